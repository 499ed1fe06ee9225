"""Small pictures and tables for the Dagster UI: a contact sheet of thumbnails, a Markdown preview.

Previews are written under ``<data_root>/previews``; they are for people looking at a run, never
part of an export.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from medtrinity_assets.storage import DataLayout, atomic_write_bytes


def markdown_preview(table: pa.Table, columns: Sequence[str], limit: int = 5) -> str:
    cols = [c for c in columns if c in table.column_names]
    if table.num_rows == 0 or not cols:
        return "_no rows_"
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table.select(cols).slice(0, limit).to_pylist():
        lines.append("| " + " | ".join(str(row[c])[:48].replace("|", "/") for c in cols) + " |")
    return "\n".join(lines)


def contact_sheet(layout: DataLayout, table: pa.Table, dest: Path, *, limit: int = 16, tile: int = 96) -> Path | None:
    """A grid of up to ``limit`` thumbnails of the table's ``image_path`` column, as one PNG."""
    from PIL import Image

    if table.num_rows == 0 or "image_path" not in table.column_names:
        return None
    paths = table.column("image_path").to_pylist()
    step = max(1, len(paths) // limit)
    chosen = paths[::step][:limit]
    cols = min(8, len(chosen))
    rows = (len(chosen) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tile, rows * tile), (0, 0, 0))
    for i, rel in enumerate(chosen):
        with Image.open(layout.resolve(rel)) as im:
            im = im.convert("RGB")
            im.thumbnail((tile, tile))
            sheet.paste(im, ((i % cols) * tile + (tile - im.width) // 2, (i // cols) * tile + (tile - im.height) // 2))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(dest, buf.getvalue())
    return dest


def inline_png_markdown(path: Path, alt: str) -> str:
    """Markdown that shows a PNG inline in the Dagster UI (as a data URL)."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"![{alt}](data:image/png;base64,{data})"
