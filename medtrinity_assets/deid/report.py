"""What de-identification did, for people: counts per kind and a picture of the redacted images.

Read from the images tables' ``deid_json`` column and the ``deid`` quarantine rows; used by the images
asset's metadata, the dataset card and the PHI checks. Counts and boxes only -- the text is never kept.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def summarise_records(records: Iterable[str | None]) -> dict[str, Any]:
    """Totals over ``deid_json`` values: images OCR'd, images with redacted boxes, boxes and text fields by kind."""
    ocr = redacted = 0
    boxes: Counter[str] = Counter()
    text: Counter[str] = Counter()
    engines: set[str] = set()
    for raw in records:
        if not raw:
            continue
        rec = json.loads(raw)
        if rec.get("ocr"):
            ocr += 1
            engines.add(rec["ocr"])
        if rec.get("redacted_boxes"):
            redacted += 1
            boxes.update(b["kind"] for b in rec["redacted_boxes"])
        for kinds in (rec.get("text_fields") or {}).values():
            text.update(kinds)
    return {"images_ocr_read": ocr, "images_redacted": redacted, "boxes_by_kind": dict(sorted(boxes.items())),
            "text_redactions_by_kind": dict(sorted(text.items())), "ocr_engines": sorted(engines)}


def dataset_summary(layout) -> dict[str, Any]:
    """:func:`summarise_records` over every images partition, plus items quarantined by the deid step."""
    import pyarrow.parquet as pq

    records: list[str | None] = []
    base = layout.root / "tables" / "images"
    for f in sorted(base.rglob("*.parquet")) if base.exists() else []:
        t = pq.read_table(f)
        if "deid_json" in t.column_names:
            records += t.column("deid_json").to_pylist()
    out = summarise_records(records)
    quarantined: Counter[str] = Counter()
    qbase = layout.root / "tables" / "quarantine"
    for f in sorted(qbase.rglob("*.parquet")) if qbase.exists() else []:
        t = pq.read_table(f, columns=["stage", "error_class"])
        for row in t.to_pylist():
            if row["stage"] == "deid":
                quarantined[row["error_class"]] += 1
    out["items_quarantined"] = dict(sorted(quarantined.items()))
    return out


def sentence(summary: dict[str, Any]) -> str:
    """One line for the card and the UI."""
    boxes = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in summary["boxes_by_kind"].items()) or "none"
    text = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in summary["text_redactions_by_kind"].items()) or "none"
    q = sum(summary.get("items_quarantined", {}).values())
    return (f"{summary['images_ocr_read']} images read for burned-in text "
            f"({', '.join(summary['ocr_engines']) or 'no OCR run'}); {summary['images_redacted']} redacted "
            f"(boxes: {boxes}); free-text redactions: {text}; {q} items quarantined by de-identification")


def redaction_sheet(layout, dest: Path, *, limit: int = 8, tile: int = 192) -> Path | None:
    """A contact sheet of stored images that had text blacked out, each box outlined in red."""
    import io

    import pyarrow.parquet as pq
    from PIL import Image, ImageDraw

    from medtrinity_assets.storage import atomic_write_bytes

    chosen: list[tuple[str, list]] = []
    base = layout.root / "tables" / "images"
    for f in sorted(base.rglob("*.parquet")) if base.exists() else []:
        t = pq.read_table(f, columns=["image_path", "deid_json"]) if "deid_json" in pq.read_schema(f).names else None
        for row in (t.to_pylist() if t is not None else []):
            rec = json.loads(row["deid_json"] or "{}")
            if rec.get("redacted_boxes") and len(chosen) < limit:
                chosen.append((row["image_path"], rec["redacted_boxes"]))
    if not chosen:
        return None
    cols = min(4, len(chosen))
    rows = (len(chosen) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tile, rows * tile), (0, 0, 0))
    for i, (rel, boxes) in enumerate(chosen):
        with Image.open(layout.resolve(rel)) as im:
            im = im.convert("RGB")
            w, h = im.size
            draw = ImageDraw.Draw(im)
            for b in boxes:
                x0, y0, x1, y1 = b["bbox"]
                draw.rectangle([x0 * w, y0 * h, x1 * w, y1 * h], outline=(255, 0, 0), width=max(1, w // 200))
            im.thumbnail((tile, tile))
            sheet.paste(im, ((i % cols) * tile + (tile - im.width) // 2, (i // cols) * tile + (tile - im.height) // 2))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(Path(dest), buf.getvalue())
    return Path(dest)
