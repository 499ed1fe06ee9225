"""A folder of 2D images (PNG, JPEG, TIFF, BMP, GIF, WebP) with an optional label CSV.

Items are every image file in the folder plus every file the CSV names (a CSV row may point at a
file with an unusual extension); any other file (a .dcm, a .txt) is a quarantine row of its own,
never a silent skip. CSV rows are checked with :func:`safety.inside_root` before any
file is touched, so a row pointing outside the folder is quarantined unread. ``scan`` opens only
headers (size, mode) under the decompression-bomb limit (source option ``max_pixels``); ``load``
decodes and reports truncated files. Greyscale (8 or 16 bit) comes out ``(H, W)``; colour
``(H, W, 3)`` with meta ``rgb: True``, except a grey picture saved as RGB (a common radiograph
export), which comes out grey with ``grey_stored_as_rgb``; EXIF rotation of photographs is applied.

Orientation of a plain image is unknown (''), so no left/right fact is derived from it, unless the
source option ``display: radiological`` says the images are frontal projections in standard
display: the patient's right on the image's left (columns toward patient Left) and head at the
top (rows toward Inferior). ``pixel_spacing: [row_mm, col_mm]`` may be given the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medtrinity_assets.config import SourceOptions, SourceSpec
from medtrinity_assets.deid import scrub
from medtrinity_assets.formats import safety
from medtrinity_assets.formats.base import ItemRef, Quarantined, ReadError, ReadItem, ScanResult, relative
from medtrinity_assets.formats.label_table import LabelRow, read_label_table, row_quarantine, rows_by_target


def display_orientation(options: SourceOptions) -> tuple[str, str]:
    """(col_toward, row_toward) from the source's ``display`` option (radiological: columns run toward the
    patient's left, rows toward the feet; anything else says nothing)."""
    return ("L", "I") if options.display == "radiological" else ("", "")


def spacing_option(options: SourceOptions) -> tuple[float, float]:
    """(row_mm, col_mm) from the source's ``pixel_spacing`` option, NaN when the source does not say."""
    if options.pixel_spacing is None:
        return float("nan"), float("nan")
    r, c = options.pixel_spacing
    return float(r), float(c)


def image_item(pixels, notes: dict[str, Any], source: SourceSpec, *, modality: str | None,
               organ: str | None, disease: str | None, labels: list[str]) -> ReadItem:
    """A 2D :class:`ReadItem` from decoded pixels and the source's defaults."""
    col, row = display_orientation(source.options)
    return ReadItem(
        pixels=pixels,
        modality=modality or source.modality or "OT",
        spacing=spacing_option(source.options),
        col_toward=col,
        row_toward=row,
        meta=dict(notes),
        labels=list(labels),
        organ=organ or source.organ,
        disease=disease or source.disease,
    )


class ImageFolderReader:
    kind = "image"

    def scan(self, source: SourceSpec) -> Iterator[ScanResult]:
        root = Path(source.path)
        if not root.is_dir():
            yield Quarantined("", "missing_source", f"source folder {root} does not exist; fix the source's path")
            return
        max_pixels = safety.max_pixels_of(source.options)
        csv_name = Path(source.labels_csv).name if source.labels_csv else ""
        rows: dict[Path, LabelRow] = {}
        if source.labels_csv:
            try:
                table = read_label_table(source.labels_csv, source.options.extra_fields)
            except ReadError as err:
                yield Quarantined(csv_name, err.error_class, err.reason)
                table = []
            rows, bad = rows_by_target(table, lambda name: safety.inside_root(root, name, source.allow_links_into))
            for row, err in bad:
                yield row_quarantine(row.filename, err.error_class, f"{csv_name} line {row.line}: {err.reason}", row)
        candidates: dict[Path, Path] = {}  # resolved -> as found
        others: list[Path] = []  # files of another kind: a row each, unless the CSV names them
        labels_csv = Path(source.labels_csv).resolve() if source.labels_csv else None
        for p in sorted(root.rglob("*")):
            if any(part.startswith(".") for part in p.relative_to(root).parts) or p.is_dir():
                continue
            if p.suffix.lower() not in safety.IMAGE_SUFFIXES:
                if p.resolve() != labels_csv:
                    others.append(p)
                continue
            try:
                candidates[safety.check_listed_file(root, p, source.allow_links_into)] = p
            except ReadError as err:
                yield Quarantined(relative(p, root), err.error_class, err.reason)
        for p in others:
            if p.resolve() not in rows:
                yield Quarantined(relative(p, root), "unsupported_file_kind",
                                  f"{p.name} is not an image this reader reads ({', '.join(safety.IMAGE_SUFFIXES)}); "
                                  "convert it, name it in the labels CSV if it is an image, or move it out of the folder")
        for target, row in rows.items():
            if target not in candidates:
                if not target.exists():
                    yield row_quarantine(row.filename, "missing_file", f"{csv_name} line {row.line}: "
                                         f"{row.filename!r} does not exist in the source folder; fix the row or add "
                                         "the file", row)
                    continue
                candidates[target] = target
        for target in sorted(candidates):
            rel = relative(target, root)
            row = rows.get(target)
            try:
                head = safety.probe_image(target, max_pixels)
            except ReadError as err:
                where = f"{csv_name} line {row.line}: " if row else ""
                yield row_quarantine(rel, err.error_class, where + err.reason, row)
                continue
            except Exception as exc:  # noqa: BLE001 -- one odd file never stops the scan
                yield row_quarantine(rel, "unreadable_image", f"{target.name}: reading its header failed "
                                     f"({type(exc).__name__}); re-export it", row)
                continue
            idents = (row.subject,) if row and row.subject else ()
            yield ItemRef(
                kind=self.kind,
                locator={"file": rel, "row": _row_dict(row), "size": [head.width, head.height]},
                rel_path=scrub(rel, idents) if idents else rel,
                subject_id=(row.subject if row and row.subject else Path(rel).stem),
                modality=(row.overrides.get("modality") if row else None) or source.modality,
                n_frames=1,
                identifiers=idents,
            )

    def load(self, source: SourceSpec, ref: ItemRef) -> ReadItem:
        path = safety.inside_root(Path(source.path), ref.locator["file"], source.allow_links_into)
        pixels, notes = safety.read_image(path, safety.max_pixels_of(source.options))
        row = ref.locator.get("row") or {}
        overrides = row.get("overrides", {})
        item = image_item(pixels, notes, source, modality=overrides.get("modality"), organ=overrides.get("organ"),
                          disease=overrides.get("disease"), labels=row.get("labels", []))
        if row.get("fields"):
            item.meta["fields"] = dict(row["fields"])
        return item


def _row_dict(row: LabelRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out: dict[str, Any] = {"line": row.line, "overrides": dict(row.overrides), "labels": list(row.labels)}
    if row.fields:
        out["fields"] = dict(row.fields)
    return out
