"""Ingest: from a source folder to manifest rows and 2D image rows (no Dagster here).

``build_manifest`` lists what a source holds (headers only) and assigns each item its shard from
the salted subject key. ``build_images`` decodes the items of one shard, turns them into 2D slices
(windowed, resized, PNG, perceptual hash) and writes the blobs content-addressed.

``images`` re-scans the source instead of reading paths from the manifest: tables hold no path at
all -- their ``rel_path`` column is a salted file key (:mod:`medtrinity_assets.deid.paths`; names live
in folder and file names) and the key -> path lookup is the private table under ``private/`` -- and a
header scan is cheap. Free text and burned-in pixel text are de-identified per item (step
:func:`deidentify`) before anything is encoded or hashed (:mod:`medtrinity_assets.deid.item`).

Isolation: every per-item step -- keying an item found by scan, and for each item of a shard
:func:`load_item` (the reader decodes it), :func:`item_to_slices` (2D images, windows, hashes) and
:func:`store_slices` (PNG/npy encoding, content-addressed writes, rows) -- turns an exception from
one input into a quarantine row with a specific error class, and the partition goes on. A reader's
own errors arrive as :class:`ReadError`; anything else is an ``unexpected_error`` row naming the
exception class and the step. Text that reaches a table goes through :func:`table_text` (file
names need not be valid UTF-8).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from medtrinity_assets.config import PipelineConfig, SourceSpec
from medtrinity_assets.deid import salted_key, scrub, split_of, stable_shard
from medtrinity_assets.deid.paths import file_key, scrub_reason, write_private_paths
from medtrinity_assets.formats.base import ItemRef, Quarantined, ReadError, ReadItem, get_reader
from medtrinity_assets.storage import DataLayout, rows_to_table
from medtrinity_assets.tables import IMAGE_SCHEMA, MANIFEST_SCHEMA, QUARANTINE_SCHEMA

log = logging.getLogger(__name__)


@dataclass
class ScannedItem:
    ref: ItemRef
    item_key: str
    subject_key: str
    study_key: str
    series_key: str
    shard: str


@dataclass
class ScanOutcome:
    items: list[ScannedItem] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)


def table_text(text: Any) -> str:
    """Text safe for Parquet and hashing. A file name that is not valid UTF-8 reaches Python with
    surrogate escapes (PEP 383), which neither pyarrow nor ``str.encode`` accept; its bad bytes are
    written as ``\\xNN`` instead, so the name stays recognisable and the row stays writable."""
    text = "" if text is None else str(text)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def quarantine_row(source: str, rel_path: str, stage: str, error_class: str, reason: str,
                   severity: str = "error") -> dict[str, Any]:
    """A row of the quarantine table: ``severity`` 'error' (the input was left out) or 'warning'
    (the item was kept; a person should know, e.g. slices missing from a series)."""
    return {"source": source, "rel_path": table_text(rel_path), "stage": stage, "reason": table_text(reason),
            "error_class": error_class, "severity": severity}


def unexpected(exc: BaseException, step: str, source: SourceSpec) -> ReadError:
    """An exception no reader or step foresaw, as a quarantine reason (absolute paths cut to the
    source's name, the message shortened)."""
    if isinstance(exc, ReadError):
        return exc
    if isinstance(exc, MemoryError):
        return ReadError("too_large", f"{step} ran out of memory; split the file or raise the limits")
    message = str(exc).replace(str(source.path), source.name)[:300]
    return ReadError("unexpected_error", f"{type(exc).__name__} while {step}: {message} -- the input hit a case "
                                         "the pipeline does not handle; report it with the file")


def scan_source(source: SourceSpec, *, salt: str, shards: int) -> ScanOutcome:
    """Run the source's reader over its folder; one bad file becomes a quarantine row, never an error."""
    out = ScanOutcome()
    if not source.path.exists():
        out.quarantine.append(
            quarantine_row(source.name, ".", "scan", "missing_source",
                           f"source folder {source.path} does not exist; fix 'path' of source '{source.name}'")
        )
        return out
    reader = get_reader(source.format)
    seen: set[str] = set()
    results = reader.scan(source)
    while True:
        try:
            res = next(results)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001 -- the reader itself failed: its remaining items are lost
            err = unexpected(exc, "scanning the source", source)
            out.quarantine.append(quarantine_row(source.name, ".", "scan", err.error_class,
                                                 err.reason + " (the scan of this source stopped here)"))
            break
        if isinstance(res, Quarantined):
            out.quarantine.append(quarantine_row(source.name, res.rel_path, res.stage, res.error_class, res.reason,
                                                 res.severity))
            continue
        try:
            item = _keyed(res, source, salt, shards)
        except Exception as exc:  # noqa: BLE001 -- one odd item never stops the scan
            err = unexpected(exc, "keying the item", source)
            out.quarantine.append(quarantine_row(source.name, res.rel_path, "scan", err.error_class,
                                                 scrub(err.reason, res.identifiers)))
            continue
        if item.item_key in seen:  # the same item reached twice (e.g. a symlinked folder)
            continue
        seen.add(item.item_key)
        out.items.append(item)
    return out


def _keyed(ref: ItemRef, source: SourceSpec, salt: str, shards: int) -> ScannedItem:
    """An item with its salted keys and shard (keys hash valid text: see :func:`table_text`)."""
    locator = json.dumps(ref.locator, sort_keys=True, default=str)  # ASCII: escapes any odd character
    subject_raw = table_text(ref.subject_id) or f"{source.name}|{locator}"
    subject_key = salted_key(subject_raw, salt, "subject")
    return ScannedItem(
        ref=ref,
        item_key=salted_key(f"{source.name}|{locator}", salt, "item"),
        subject_key=subject_key,
        study_key=salted_key(table_text(ref.study_id), salt, "study"),
        series_key=salted_key(table_text(ref.series_id), salt, "series"),
        shard=stable_shard(subject_key, shards),
    )


def with_file_key(row: dict[str, Any], salt: str, private: dict[str, str] | None = None) -> dict[str, Any]:
    """A row whose ``rel_path`` is replaced by the file key (and its reason scrubbed of the path);
    ``private`` collects key -> path for the private table."""
    rel = str(row.get("rel_path") or "")
    key = file_key(row["source"], rel, salt)
    if private is not None and rel:
        private[key] = rel
    out = {**row, "rel_path": key}
    if "reason" in out:
        out["reason"] = scrub_reason(out["reason"], rel, key)
    return out


def build_manifest(source: SourceSpec, *, salt: str, shards: int, layout: DataLayout | None = None) -> tuple[pa.Table, pa.Table]:
    """Manifest rows (one per readable item, with its shard) and scan-time quarantine rows.

    Paths become file keys; with ``layout`` the private key -> path table of the source is written."""
    scan = scan_source(source, salt=salt, shards=shards)
    rows = [
        {
            "source": source.name,
            "item_key": s.item_key,
            "kind": s.ref.kind,
            "rel_path": table_text(s.ref.rel_path),
            "n_files": s.ref.n_files,
            "n_frames": s.ref.n_frames,
            "subject_key": s.subject_key,
            "study_key": s.study_key,
            "series_key": s.series_key,
            "modality": s.ref.modality or source.modality or "",
            "shard": s.shard,
        }
        for s in scan.items
    ]
    private: dict[str, str] = {}
    rows = [with_file_key(r, salt, private) for r in rows]
    quarantine = [with_file_key(r, salt, private) for r in scan.quarantine]
    if layout is not None:
        write_private_paths(layout.root, source.name, private)
    rows.sort(key=lambda r: (r["shard"], r["rel_path"], r["item_key"]))
    return rows_to_table(rows, MANIFEST_SCHEMA), rows_to_table(quarantine, QUARANTINE_SCHEMA)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _float(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f


@dataclass
class ImagesResult:
    table: pa.Table
    quarantine: pa.Table
    items_read: int
    slices: int


def load_item(reader, source: SourceSpec, item: ScannedItem) -> ReadItem:
    """Step 1: the reader decodes the item (pixels in physical units, canonical orientation)."""
    try:
        return reader.load(source, item.ref)
    except Exception as exc:  # noqa: BLE001 -- a reader bug or an unforeseen file: quarantine, go on
        raise unexpected(exc, "decoding", source) from exc


def default_workers() -> int:
    """Threads per partition: decoding (zlib, JPEG 2000) and PNG encoding release the GIL."""
    return max(1, min(4, os.cpu_count() or 1))


def build_images(
    cfg: PipelineConfig,
    source: SourceSpec,
    shard: str,
    layout: DataLayout,
    *,
    salt: str,
    workers: int | None = None,
) -> ImagesResult:
    """Decode, slice, window, resize and store the images of one (source, shard).

    Items are processed on a small thread pool; the rows are sorted afterwards, so the output does
    not depend on ``workers``.
    """
    from concurrent.futures import ThreadPoolExecutor

    scan = scan_source(source, salt=salt, shards=cfg.shards)
    mine = sorted((s for s in scan.items if s.shard == shard), key=lambda s: s.item_key)
    del scan  # the other shards' items (and what their readers keep for load) are not needed here
    reader = get_reader(source.format)
    context = source.options.context_slices if source.options.context_slices is not None else cfg.context_slices
    n_workers = workers or cfg.ingest.workers or default_workers()

    def one(s: ScannedItem) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        rows, bad = _ingest_item(cfg, source, shard, layout, reader, s, context)
        return [with_file_key(r, salt) for r in rows], (with_file_key(bad, salt) if bad is not None else None)

    rows: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    items_read = 0
    if n_workers > 1 and len(mine) > 1:
        with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="ingest") as pool:
            results = list(pool.map(one, mine))
    else:
        results = [one(s) for s in mine]
    for item_rows, bad in results:
        if bad is not None:
            quarantine.append(bad)
            continue
        items_read += 1
        rows.extend(item_rows)
    rows.sort(key=lambda r: (r["item_key"], r["slice_index"]))
    return ImagesResult(
        table=rows_to_table(rows, IMAGE_SCHEMA),
        quarantine=rows_to_table(quarantine, QUARANTINE_SCHEMA),
        items_read=items_read,
        slices=len(rows),
    )


def _ingest_item(cfg: PipelineConfig, source: SourceSpec, shard: str, layout: DataLayout, reader, s: ScannedItem,
                 context: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One item -> its image rows (blobs written), or a quarantine row. The steps, in order:
    decode (:func:`load_item`), 2D images (:func:`item_to_slices`), de-identify text and pixels
    (:func:`deidentify`), encode and store (:func:`store_slices`); an exception in any of them becomes
    the item's quarantine row."""
    from medtrinity_assets.preprocess.item_images import item_to_slices

    stage, step = "load", "decoding"
    try:
        item = load_item(reader, source, s)
        stage, step = "preprocess", "making its 2D images"
        slices = item_to_slices(item, max_side=cfg.max_side, context_slices=context, organ=item.organ or source.organ)
        stage, step = "deid", "de-identifying its text and pixels"
        deid = deidentify(cfg, source, item, slices, s.ref)
        if deid.quarantine is not None:
            return [], quarantine_row(source.name, s.ref.rel_path, "deid", *deid.quarantine)
        stage, step = "preprocess", "encoding and storing its images"
        return store_slices(source, shard, layout, s, item, slices, deid.records), None
    except Exception as exc:  # noqa: BLE001 -- isolation: this item only
        err = unexpected(exc, step, source)
        return [], quarantine_row(source.name, s.ref.rel_path, stage, err.error_class,
                                  scrub(err.reason, s.ref.identifiers))


def deidentify(cfg: PipelineConfig, source: SourceSpec, item: ReadItem, slices: list, ref: ItemRef):
    """Free text and burned-in text of one item (:func:`medtrinity_assets.deid.item.deidentify_item`),
    before any encoding or hashing; an OCR failure is a quarantine row, never an image stored unread."""
    from medtrinity_assets.deid.item import ItemDeid, deidentify_item

    modality = (item.modality or ref.modality or source.modality or "OT").upper()
    try:
        return deidentify_item(item, slices, source, modality=modality, identifiers=ref.identifiers,
                               public_words=[w for s in cfg.sources for w in s.name.split("_")],
                               engine_name=cfg.ingest.ocr_engine)
    except Exception as exc:  # noqa: BLE001 -- the OCR engine missing or failing on this image
        return ItemDeid(quarantine=("deid_failed", f"burned-in text could not be checked ({type(exc).__name__}: "
                                                   f"{exc}); install the OCR engine or set pixel_ocr on the source"))


def store_slices(source: SourceSpec, shard: str, layout: DataLayout, s: ScannedItem, item: ReadItem,
                 slices: list, deid_records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Encode each 2D image (PNG, values .npy, label PNG), write it content-addressed, and make its row."""
    from medtrinity_assets.preprocess.encode import encode_label_png, encode_png, encode_values

    ref = s.ref
    modality = (item.modality or ref.modality or source.modality or "OT").upper()
    organ = item.organ or source.organ or str(item.meta.get("body_part") or "").lower() or ""
    disease = item.disease or source.disease or ""
    is_volume = len(slices) > 0 and slices[0].slice_index >= 0
    rows = []
    records = deid_records if deid_records is not None else [None] * len(slices)
    for sl, deid_record in zip(slices, records):
        image_rel, image_sha = layout.put_blob(encode_png(sl.image), ".png")
        values_rel = layout.put_blob(encode_values(sl.values), ".npy")[0] if sl.values is not None else None
        mask_rel = None
        if sl.label_map is not None and np.any(sl.label_map):
            mask_rel = layout.put_blob(encode_label_png(sl.label_map), ".png")[0]
        sample_id = hashlib.sha256(f"{s.item_key}|{sl.slice_index}".encode()).hexdigest()[:24]
        h, w = sl.image.shape[:2]
        rows.append(
            {
                "sample_id": sample_id,
                "source": source.name,
                "item_key": s.item_key,
                "subject_key": s.subject_key,
                "study_key": s.study_key,
                "series_key": s.series_key,
                "volume_ref": s.item_key if is_volume else "",
                "rel_path": table_text(ref.rel_path),
                "slice_index": int(sl.slice_index),
                "n_slices": int(sl.n_slices),
                "axis": "axial" if is_volume else "none",
                "neighbour_slices": [int(i) for i in sl.neighbours],
                "modality": modality,
                "organ": organ,
                "disease": disease,
                "labels": [str(x) for x in item.labels],
                "caption_in": item.caption,
                "image_path": image_rel,
                "image_sha256": image_sha,
                "values_path": values_rel,
                "width": int(w),
                "height": int(h),
                "orig_width": int(sl.orig_size[1]),
                "orig_height": int(sl.orig_size[0]),
                "pixel_spacing": [_float(x) for x in sl.spacing],
                "slice_thickness": _float(item.slice_thickness),
                "col_toward": item.col_toward or "",
                "row_toward": item.row_toward or "",
                "window": sl.window_name,
                "window_center": _float(sl.window_center),
                "window_width": _float(sl.window_width),
                "phash": sl.phash,
                "gt_mask_path": mask_rel,
                "gt_label_names_json": _json({str(k): v for k, v in item.label_names.items()}) if mask_rel else None,
                "gt_boxes_json": _json(sl.boxes) if sl.boxes else None,
                "meta_json": _json(item.meta),
                "licence": source.licence,
                "split": split_of(s.subject_key),
                "shard": shard,
                "deid_json": _json(deid_record) if deid_record is not None else None,
            }
        )
    return rows


def count_by(table: pa.Table, column: str) -> dict[str, int]:
    if table.num_rows == 0 or column not in table.column_names:
        return {}
    return dict(sorted(Counter(str(v) for v in table.column(column).to_pylist()).items()))

