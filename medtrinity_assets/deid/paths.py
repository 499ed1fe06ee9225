"""File and folder names never leave ingest: tables, logs and previews carry a salted file key instead.

A folder named ``<Family>_<Given>_DOB<date>/`` or a file ``<Given>_<Family>_MRN<number>.png`` holds
identifiers no header scrub can know. So every table column that used to hold a relative path
(``rel_path`` of manifest, images and quarantine) holds ``file_key(source, rel_path)`` -- e.g.
``fil-3fa2c91d0b7e4d5a8c21`` -- and quarantine reasons have the path and each of its components
replaced by that key. The one place that maps keys back to paths is the **private path table**
``<data_root>/private/paths/source=<name>/part-0.parquet`` (``file_key, rel_path``): never exported,
never previewed, skipped by the PHI scan of ``data_root`` (which says so in its report) and
readable only by the operator (``lookup_paths``, ``medtrinity_assets.deid.paths.lookup``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from medtrinity_assets.deid import salted_key
from medtrinity_assets.deid.detect import redact_text

PRIVATE_DIR = "private"
PRIVATE_PATHS_SCHEMA = pa.schema([("file_key", pa.string()), ("rel_path", pa.string())])


def file_key(source: str, rel_path: str, salt: str) -> str:
    """Stable pseudonym of a path inside a source ('' stays '')."""
    if not rel_path:
        return ""
    return salted_key(f"{source}|{rel_path}", salt, "file")


def scrub_reason(reason: str, rel_path: str, key: str) -> str:
    """A quarantine reason with the path (whole, and each name in it) replaced by the file key, and any
    remaining name, ID or date redacted."""
    text = str(reason or "")
    if rel_path:
        text = text.replace(rel_path, key)
        parts = sorted({p for p in re.split(r"[/\\]", rel_path) if len(p) >= 3}, key=len, reverse=True)
        for part in parts:
            text = text.replace(part, key)
            stem = part.split(".", 1)[0]
            if len(stem) >= 3:
                text = text.replace(stem, key)
    return redact_text(text)[0] or ""


def private_paths_file(root: Path, source: str) -> Path:
    return Path(root) / PRIVATE_DIR / "paths" / f"source={source}" / "part-0.parquet"


def write_private_paths(root: Path, source: str, mapping: dict[str, str]) -> Path:
    """Write (replace) the private key -> path table of a source (atomic)."""
    from medtrinity_assets.storage import write_table

    rows = sorted(mapping.items())
    table = pa.table({"file_key": [k for k, _ in rows], "rel_path": [v for _, v in rows]}, schema=PRIVATE_PATHS_SCHEMA)
    path = private_paths_file(root, source)
    write_table(path, table)
    return path


def lookup(root: Path, keys: Iterable[str], source: str | None = None) -> dict[str, str]:
    """Operator's lookup: file keys -> relative paths (from the private table)."""
    import pyarrow.parquet as pq

    wanted = set(keys)
    base = Path(root) / PRIVATE_DIR / "paths"
    files = [private_paths_file(root, source)] if source else sorted(base.glob("source=*/part-0.parquet"))
    out: dict[str, str] = {}
    for f in files:
        if f.exists():
            for row in pq.read_table(f).to_pylist():
                if row["file_key"] in wanted:
                    out[row["file_key"]] = row["rel_path"]
    return out
