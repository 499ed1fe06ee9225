"""DicomReader: ``scan`` (headers -> items) and ``load`` (one item -> a canonical ReadItem).

``scan`` parses each file's header once and checks it (:mod:`.triage`), groups the files into
items (:mod:`.series`) and scrubs every path it emits with every identifier found in the source's
headers (:mod:`.identifiers`). The headers travel with the
item (``ItemRef.hints``), so ``load`` reads a series' pixel bytes straight from where scan found
them instead of parsing every header again; it reads a file whole only where it must (the first
file of an item, for its metadata; a file changed since the scan).

The locator names the item's files relative to the source folder (``load`` joins them to the
source's path again), so an item's key -- a salted hash of the source name and the locator -- does
not depend on where the folder lies: a moved or copied source keeps its keys, sample ids and outputs.

``load`` decodes (:mod:`.pixels`: modality LUT, MONOCHROME1, palette/YBR colour) and hands pixels
and geometry to :mod:`.volume` for the canonical layout. Quarantine reasons never quote header
values that identify anyone.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from medtrinity_assets import deid
from medtrinity_assets.config import SourceSpec
from medtrinity_assets.formats.base import ItemRef, Quarantined, ReadError, ReadItem, ScanResult
from medtrinity_assets.formats.dicom import pixels, series
from medtrinity_assets.formats.dicom.geometry import multiframe_grid, series_grid, slice_sort_key
from medtrinity_assets.formats.dicom.headers import Header
from medtrinity_assets.formats.dicom.identifiers import identifier_values, path_scrubber, subject_of
from medtrinity_assets.formats.dicom.meta import allowed_meta
from medtrinity_assets.formats.dicom.triage import IN_MEMORY_BYTES, read_header
from medtrinity_assets.formats.dicom.volume import finish_2d, finish_volume
from medtrinity_assets.formats.safety import source_root

HINT_HEADERS = "dicom_headers"  # ItemRef.hints key: the scan's headers of the item's files, in order


def list_files(root: Path) -> list[Path]:
    """Every candidate file under ``root`` (hidden files and DICOMDIR indexes left out), sorted."""
    if root.is_file():
        return [root]
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            out.append(Path(dirpath) / name)
    return out


def _burned(values: Any) -> bool:
    return str(values.get("BurnedInAnnotation", "")).upper() == "YES"


BURNED_IN_REASON = ("BurnedInAnnotation is YES: the pixels may show patient identifiers; set "
                    "`options: {allow_burned_in: true}` on this source only if the burned-in text is known to be "
                    "free of identifiers")


class DicomReader:
    """Reader for ``format: dicom`` sources (see the package docstring)."""

    def scan(self, source: SourceSpec) -> Iterator[ScanResult]:
        root = Path(source.path)
        allow_burned = source.options.allow_burned_in
        base = source_root(root)
        headers: list[Header] = []
        bad: list[Quarantined] = []
        for path in list_files(root):
            try:
                res = read_header(path)
            except Exception as exc:  # noqa: BLE001 -- one odd file never stops the scan
                res = Quarantined("", "unreadable_header", f"reading the header failed ({type(exc).__name__}); "
                                  "the file is damaged or unusual -- re-export it")
            if isinstance(res, Quarantined):
                res.rel_path = os.path.relpath(path, base)
                bad.append(res)
            else:
                headers.append(res)
        all_idents: set[str] = set()
        for h in headers:
            all_idents |= h.idents
        scrub = path_scrubber(all_idents)

        def row(path: Path, error_class: str, reason: str, severity: str = "error") -> Quarantined:
            return Quarantined(scrub(os.path.relpath(path, base)), error_class, reason, severity=severity)

        for b in bad:
            yield Quarantined(scrub(b.rel_path), b.error_class, b.reason, b.stage)

        images: list[Header] = []
        gts: list[Header] = []
        for h in headers:
            if h.kind in ("seg", "rtstruct"):
                gts.append(h)
            elif h.error:
                yield row(h.path, *h.error)
            elif _burned(h) and not allow_burned:
                yield row(h.path, "burned_in_annotation", BURNED_IN_REASON)
            else:
                images.append(h)

        groups, rejected = series.group_images(images)
        for h, error_class, reason in rejected:
            yield row(h.path, error_class, reason)
        for h in series.attach_ground_truth(groups, gts):
            label = "SEG" if h.kind == "seg" else "RTSTRUCT"
            yield row(h.path, f"{h.kind}_images_missing", f"{label} references an image series that is not in "
                      "the source; add its images (the whole series) to this source's folder")

        for g in groups:
            first = g.headers[0]
            identifiers = tuple(sorted(g.idents))  # a subset of all_idents, which ``scrub`` covers
            for h in g.headers:  # the headers travel with the item: keep them small
                h.idents = set()
            for error_class, reason in g.warnings:
                yield row(first.path, error_class, reason, severity="warning")
            n_frames = int(first.get("NumberOfFrames", 1) or 1) if g.kind != "dicom_series" else len(g.headers)
            yield ItemRef(
                kind=g.kind,
                locator={  # relative to the source folder: the item key must not depend on where it lies
                    "files": [_relative(h.path, base) for h in g.headers],
                    "seg": [_relative(h.path, base) for h in g.gt if h.kind == "seg"],
                    "rtstruct": [_relative(h.path, base) for h in g.gt if h.kind == "rtstruct"],
                    "allow_burned_in": allow_burned,
                },
                rel_path=scrub(os.path.relpath(first.path, base)),
                subject_id=subject_of(first),
                study_id=series.uid(first, "StudyInstanceUID"),
                series_id=series.uid(first, "SeriesInstanceUID"),
                modality=str(first.get("Modality") or source.modality or "") or None,
                n_files=len(g.headers),
                n_frames=n_frames,
                identifiers=identifiers,
                hints={HINT_HEADERS: list(g.headers)},
            )

    # ------------------------------------------------------------ load

    def load(self, source: SourceSpec, ref: ItemRef) -> ReadItem:
        base = source_root(Path(source.path))
        files = [base / p for p in ref.locator["files"]]
        allow_burned = bool(ref.locator.get("allow_burned_in", source.options.allow_burned_in))
        headers = _scan_headers(ref, files)
        if any(_burned(h) for h in headers) and not allow_burned:
            raise ReadError("burned_in_annotation", BURNED_IN_REASON)
        gt = {k: [str(base / p) for p in ref.locator.get(k) or []] for k in ("seg", "rtstruct")}
        if ref.kind == "dicom_series":
            item = _load_series(headers, gt)
        else:
            ds = read_dataset(files[0])
            item = _load_multiframe(ds, gt) if ref.kind == "dicom_multiframe" else _load_single(ds)
        item.burned_in_annotation = any(_burned(h) for h in headers)
        item.modality = item.modality or source.modality or "OT"
        item.organ = source.organ
        item.disease = source.disease
        return item


def _relative(path: Path, base: Path) -> str:
    """A scanned file's path under the source folder, as the locator keeps it ('/'-separated)."""
    return Path(os.path.relpath(path, base)).as_posix()


def _scan_headers(ref: ItemRef, files: list[Path]) -> list[Header]:
    """The scan's headers of the item's files; read again when the ref came without them."""
    hinted = ref.hints.get(HINT_HEADERS)
    if hinted and [h.path for h in hinted] == files:
        return list(hinted)
    out = []
    for p in files:
        h = read_header(p)
        if isinstance(h, Quarantined):
            raise ReadError(h.error_class, h.reason)
        out.append(h)
    return out


def read_dataset(path: Path) -> Dataset:
    """A whole file (pixel data included); a small one from memory, in one read."""
    try:
        size = path.stat().st_size
        return pydicom.dcmread(io.BytesIO(path.read_bytes()) if size <= IN_MEMORY_BYTES else path, force=True)
    except Exception as exc:  # noqa: BLE001
        raise ReadError("truncated_dicom", f"cannot read a file of this item ({type(exc).__name__}); "
                        "copy it again") from None


def base_meta(ds: Dataset) -> dict[str, Any]:
    """Allow-listed metadata of the item's first header, minus any text repeating one of its identifiers."""
    meta = allowed_meta(ds)
    variants = [v.lower() for v in deid.identifier_variants(identifier_values(ds))]
    for key in [k for k, v in meta.items() if isinstance(v, str) and not k.startswith("TransferSyntax")]:
        if any(v in meta[key].lower() for v in variants):
            del meta[key]
    if meta.get("BodyPartExamined"):  # the lower-case key other readers also fill
        meta["body_part"] = str(meta["BodyPartExamined"]).lower()
    meta["monochrome1_inverted"] = str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1"
    return meta


def _load_series(headers: list[Header], gt: dict[str, list[str]]) -> ReadItem:
    """Slices decoded one by one (the first read whole for its metadata, the rest from the bytes
    scan located), stacked in position order."""
    headers = sorted(headers, key=slice_sort_key)
    first = read_dataset(headers[0].path)
    slices: list[np.ndarray] = []
    kept: list[Header] = []
    failures: list[str] = []
    for i, h in enumerate(headers):
        try:
            arr = pixels.decode_located(h) if i > 0 else None
            values: Any = h
            ds: Dataset | None = None
            if arr is None:  # the first file, or one that must be read whole
                ds = first if i == 0 else read_dataset(h.path)
                arr = pixels.decode(ds)
                values = ds
                pixels.free_pixels(ds)  # the stored bytes are no longer needed: free them slice by slice
        except ReadError as exc:
            failures.append(exc.reason)
            continue
        slices.append(pixels.modality_lut(pixels.monochrome1(arr, values), values, ds))
        kept.append(h)
    if not slices:
        raise ReadError("decode_failed", failures[0] if failures else "no slice could be decoded")
    shape = Counter(s.shape for s in slices).most_common(1)[0][0]
    pairs = [(s, h) for s, h in zip(slices, kept) if s.shape == shape]
    vol = np.stack([s for s, _ in pairs])  # float32 already: no second copy
    kept = [h for _, h in pairs]
    meta = base_meta(first)
    meta["n_slices"] = len(kept)
    if failures:
        meta["slices_failed"] = len(failures)
    return finish_volume(vol, first, meta, series_grid(kept), gt)


def _load_multiframe(ds: Dataset, gt: dict[str, list[str]]) -> ReadItem:
    arr = pixels.decode(ds)
    frames = int(ds.get("NumberOfFrames") or 1)
    rgb = int(ds.get("SamplesPerPixel") or 1) == 3 or \
        str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR"
    if frames == 1:
        arr = arr[None]
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    meta = base_meta(ds)
    if rgb:  # a colour cine/stack: the contract has no RGB volume, keep the first frame as a 2D image
        meta["rgb"] = True
        meta["frames_in_object"] = frames
        return finish_2d(arr[0].astype(np.float32), ds, meta, None, None)
    out = np.empty(arr.shape, dtype=np.float32)
    arr = pixels.monochrome1(arr, ds)
    for i in range(arr.shape[0]):
        out[i] = pixels.modality_lut(arr[i], ds, ds, per_frame[i] if i < len(per_frame) else None)
    grid, order, dropped = multiframe_grid(ds)
    if grid is not None:
        out = out[order]
        if dropped:
            meta["frames_dropped_same_position"] = dropped
    meta["n_slices"] = int(out.shape[0])
    return finish_volume(out, ds, meta, grid, gt)


def _load_single(ds: Dataset) -> ReadItem:
    arr = pixels.decode(ds)
    meta = base_meta(ds)
    rgb = arr.ndim == 3 and arr.shape[-1] == 3 and (
        int(ds.get("SamplesPerPixel") or 1) == 3
        or str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR")
    if rgb:
        meta["rgb"] = True
        img = arr.astype(np.float32)
    else:
        if arr.ndim == 3:  # a multi-frame object whose header says 1 frame per decode: keep the first
            arr = arr[0]
        img = pixels.modality_lut(pixels.monochrome1(arr, ds), ds, ds)
    return finish_2d(img, ds, meta, None, None)
