"""DICOM reader: series, multi-frame and single images, with SEG/RTSTRUCT ground truth attached.

``scan`` reads headers only (pixel data deferred, never decoded) and decides what an item is:

* single-frame cross-sectional slices (they carry ImagePositionPatient/ImageOrientationPatient)
  are grouped by SeriesInstanceUID into one ``dicom_series`` item, sorted along the slice normal;
* multi-frame and enhanced objects are one ``dicom_multiframe`` item each;
* projection and other 2D images (CR, DX, MG, US, secondary capture ...) are one ``dicom_file`` each;
* SEG and RTSTRUCT objects are not images: they are attached to the item they reference
  (series UID, source SOP instance UIDs, or a unique frame of reference) through the item's
  locator; when their images are absent they become a quarantine row.

``load`` decodes, applies the modality LUT (HU for CT), inverts MONOCHROME1, returns RGB for
colour images and turns geometry into the canonical LPS layout of :mod:`.base` -- the ground truth
goes through exactly the same reorientation so that it stays on its image.

Identifiers never leave: metadata is allow-listed (:mod:`.dicom_meta`), every path kept for the
operator is scrubbed of every identifier found in the source's headers, and quarantine reasons
never quote header values.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from medtrinity_assets import deid
from medtrinity_assets.config import SourceSpec
from medtrinity_assets.formats import dicom_gt
from medtrinity_assets.formats.base import ItemRef, Quarantined, ReadError, ReadItem, ScanResult
from medtrinity_assets.formats.dicom_meta import allowed_meta, identifier_values

PROJECTION_MODALITIES = {"CR", "DX", "MG", "US", "XA", "RF", "IO", "PX", "OT", "XC", "ES", "GM", "SM",
                         "OP", "DG", "BMD", "IVUS", "OCT"}
NON_IMAGE_MODALITIES = {"RTDOSE", "RTPLAN", "RTRECORD", "SR", "KO", "PR", "REG", "RWV", "DOC", "ECG",
                        "HD", "AU", "FID", "PLAN"}
SEG_SOP = dicom_gt.SEG_SOP_CLASS
RTSTRUCT_SOP = dicom_gt.RTSTRUCT_SOP_CLASS
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # PixelData, FloatPixelData, DoubleFloatPixelData
UNDEFINED_LENGTH = 0xFFFFFFFF

# Transfer syntax -> the package that decodes it (named in quarantine reasons).
_PLUGIN_FOR = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg (or pillow)",
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pylibjpeg-libjpeg (or pyjpegls)",
    "1.2.840.10008.1.2.4.81": "pylibjpeg-libjpeg (or pyjpegls)",
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg (or pillow)",
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg (or pillow)",
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg>=2.0",
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg>=2.0",
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg>=2.0",
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",
}


def plugin_hint(ts: str) -> str:
    name = UID(ts).name if ts else "unknown"
    pkg = _PLUGIN_FOR.get(str(ts))
    if pkg:
        return f"transfer syntax {name} ({ts}): install {pkg} into the pipeline's environment"
    return (f"transfer syntax {name} ({ts}) has no pixel decoder in pydicom or the pylibjpeg plugins; "
            "convert the file (e.g. dcmdjpeg/gdcmconv to Explicit VR Little Endian) and re-add it")


# ---------------------------------------------------------------- header reading


# What scan keeps of a header: a few values, not the dataset (a source may hold 100k files).
_SUMMARY_KEYWORDS = ("SOPClassUID", "Modality", "PatientID", "PatientName", "StudyInstanceUID",
                     "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID", "Rows", "Columns",
                     "NumberOfFrames", "InstanceNumber", "ImageOrientationPatient", "ImagePositionPatient",
                     "BurnedInAnnotation")


@dataclass
class _Header:
    path: Path
    info: dict[str, Any]  # _SUMMARY_KEYWORDS values as plain Python (str / float lists)
    idents: set[str]
    kind: str = ""  # slice | multiframe | single | seg | rtstruct
    error: tuple[str, str] | None = None  # (error_class, reason) when the file cannot be used
    ref_series: set[str] = field(default_factory=set)  # SEG/RTSTRUCT: what they annotate
    ref_sops: set[str] = field(default_factory=set)
    ref_fors: set[str] = field(default_factory=set)

    def get(self, keyword: str, default: Any = None) -> Any:
        value = self.info.get(keyword)
        return default if value is None else value

    def __contains__(self, keyword: str) -> bool:
        return self.info.get(keyword) is not None


def _summary(ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kw in _SUMMARY_KEYWORDS:
        try:
            value = ds.get(kw)
        except Exception:  # noqa: BLE001 -- a damaged value is treated as absent
            value = None
        if value is None or value == "":
            continue
        if kw in ("ImageOrientationPatient", "ImagePositionPatient"):
            try:
                value = [float(v) for v in value]
            except (TypeError, ValueError):
                continue
        elif kw in ("Rows", "Columns", "NumberOfFrames", "InstanceNumber"):
            try:
                value = int(value)
            except (TypeError, ValueError):
                continue
        else:
            value = str(value)
        out[kw] = value
    return out


def _list_files(root: Path) -> list[Path]:
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


def _looks_like_dicom(ds: Dataset) -> bool:
    return bool(ds.get("SOPClassUID") or (ds.get("Rows") and any(t in ds for t in PIXEL_TAGS)))


def _pixel_problem(ds: Dataset, path: Path) -> tuple[str, str] | None:
    """Checks the deferred pixel element against what the header announces (no decoding)."""
    tag = next((t for t in PIXEL_TAGS if t in ds), None)
    if tag is None:
        sop_name = UID(str(ds.get("SOPClassUID", ""))).name if ds.get("SOPClassUID") else ""
        if "Image" in sop_name:
            return ("no_pixel_data", f"the header says '{sop_name}' but the file holds no PixelData: it was "
                    "truncated or stripped of its pixels; copy it again from the original")
        return ("no_pixel_data", "the object has no PixelData element (not an image); "
                "remove it or provide the image it belongs to")
    raw = ds._dict[tag]  # noqa: SLF001 -- the raw element tells length/offset without reading it
    length = getattr(raw, "length", None)
    offset = getattr(raw, "value_tell", None)
    if length is None or offset is None:
        return None
    size = path.stat().st_size
    if length == UNDEFINED_LENGTH:  # encapsulated (compressed): checked when decoding
        return None
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    frames = int(ds.get("NumberOfFrames") or 1)
    spp = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.get("BitsAllocated") or 0)
    if tag != 0x7FE00010:
        bits = 32 if tag == 0x7FE00008 else 64
    expected = (rows * cols * frames * spp * bits + 7) // 8
    if str(ds.get("PhotometricInterpretation", "")).startswith("YBR_FULL_422") and not _is_compressed(ds):
        expected = expected * 2 // 3
    stored = min(length, max(0, size - offset))
    if offset + length > size:
        return ("truncated_dicom", f"the file ends {offset + length - size} bytes before the end of its "
                f"pixel data ({stored} of {length} bytes present): the copy was cut short; copy it again")
    if expected and stored < expected:
        return ("pixel_data_short", f"header announces {rows}x{cols}x{frames} pixels ({expected} bytes) but "
                f"only {stored} bytes are stored; the file is damaged -- re-export it")
    return None


def _is_compressed(ds: Dataset) -> bool:
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return bool(ts) and UID(ts).is_compressed


def _transfer_syntax(ds: Dataset) -> str:
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts:
        return str(ts)
    # no file meta (old files): the encoding pydicom detected while reading is the transfer syntax
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit in (None, True):
        return "1.2.840.10008.1.2"
    return "1.2.840.10008.1.2.1" if little in (None, True) else "1.2.840.10008.1.2.2"


def _ensure_transfer_syntax(ds: Dataset) -> None:
    """pydicom decodes only when the file meta names the transfer syntax; old files lack it."""
    if not getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None):
        from pydicom.dataset import FileMetaDataset

        if not hasattr(ds, "file_meta") or ds.file_meta is None:
            ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = _transfer_syntax(ds)


def _decoder_problem(ds: Dataset) -> tuple[str, str] | None:
    from pydicom.pixels import get_decoder

    ts = _transfer_syntax(ds)
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        return ("undecodable_transfer_syntax", plugin_hint(ts))
    if not decoder.is_available:
        return ("undecodable_transfer_syntax", plugin_hint(ts))
    return None


def read_header(path: Path) -> _Header | Quarantined:
    """One file's header with its pixel data deferred; quarantine rows are returned unscrubbed."""
    rel = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return Quarantined(rel, "unreadable_file", f"cannot stat the file ({exc.strerror}); check permissions")
    if size == 0:
        return Quarantined(rel, "empty_file", "the file is empty (0 bytes); re-export or remove it")
    ds: Dataset | None = None
    try:
        ds = pydicom.dcmread(path, defer_size=1024)
    except InvalidDicomError:
        try:
            ds = pydicom.dcmread(path, defer_size=1024, force=True)
        except Exception:  # noqa: BLE001 -- anything pydicom throws on random bytes
            ds = None
        if ds is not None and not _looks_like_dicom(ds):
            ds = None
        if ds is None:
            return Quarantined(rel, "not_dicom", "not a DICOM file (no 'DICM' marker and no DICOM image "
                               "elements); remove it from the source folder")
    except Exception as exc:  # noqa: BLE001 -- a damaged header
        return Quarantined(rel, "truncated_dicom", f"the DICOM header cannot be parsed ({type(exc).__name__}); "
                           "the file is truncated or damaged -- copy it again")
    if not _looks_like_dicom(ds):
        return Quarantined(rel, "truncated_dicom", "the file has a DICOM marker but its header ends before "
                           "the SOP class and image elements: it is truncated; copy it again or remove it")
    try:
        idents = identifier_values(ds)
    except Exception:  # noqa: BLE001
        idents = set()
    h = _Header(path, _summary(ds), idents)
    sop = str(ds.get("SOPClassUID", ""))
    modality = str(ds.get("Modality", "")).upper()
    if sop == SEG_SOP or modality == "SEG":
        h.kind = "seg"
        h.ref_series, h.ref_sops = dicom_gt.seg_referenced(ds)
        h.ref_fors = {str(ds.get("FrameOfReferenceUID") or "")} - {""}
    elif sop == RTSTRUCT_SOP or modality == "RTSTRUCT":
        h.kind = "rtstruct"
        h.ref_series, h.ref_sops, h.ref_fors = dicom_gt.rtstruct_referenced(ds)
    elif modality in NON_IMAGE_MODALITIES:
        h.error = ("not_an_image", f"{modality or 'this'} object is not an image this pipeline describes; "
                   "leave it out of image sources")
    else:
        h.error = _pixel_problem(ds, path) or _decoder_problem(ds)
        frames = int(ds.get("NumberOfFrames") or 1)
        enhanced = "PerFrameFunctionalGroupsSequence" in ds
        has_plane = "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds
        if frames > 1 or enhanced:
            h.kind = "multiframe"
        elif has_plane and modality not in PROJECTION_MODALITIES:
            h.kind = "slice"
        else:
            h.kind = "single"
    return h


# ---------------------------------------------------------------- scan helpers


def _scrubber(identifiers: Iterable[str]) -> Callable[[str], str]:
    """Scrub function over many identifiers (a large source has 100k+ UIDs and names).

    Checking every identifier against every path is quadratic; instead the identifier forms are
    indexed by their last 4 (or 3) characters, each path position looks up the forms that could end
    there, and only the forms actually found are handed to ``deid.scrub`` for the replacement.
    """
    index4: dict[str, list[str]] = defaultdict(list)
    index3: dict[str, list[str]] = defaultdict(list)
    for v in deid.identifier_variants(identifiers):
        lv = v.lower()
        (index4[lv[-4:]] if len(lv) >= 4 else index3[lv]).append(lv)

    def scrub(text: str) -> str:
        low = text.lower()
        hits: set[str] = set()
        for j in range(3, len(low) + 1):
            for cand in index3.get(low[j - 3:j], ()):
                hits.add(cand)
            if j >= 4:
                for cand in index4.get(low[j - 4:j], ()):
                    if len(cand) <= j and low.startswith(cand, j - len(cand)):
                        hits.add(cand)
        return deid.scrub(text, sorted(hits)) if hits else text

    return scrub


def _subject(ds: Any) -> str:
    for kw in ("PatientID", "PatientName", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        v = str(ds.get(kw) or "").strip()
        if v:
            return v
    return ""


def _vec(values: Any) -> np.ndarray:
    return np.asarray([float(v) for v in values], dtype=np.float64)


def _slice_sort_key(ds: Any) -> tuple[float, float]:
    """Position along the slice normal (then instance number); a Dataset or a scan summary."""
    inst = float(ds.get("InstanceNumber") or 0)
    try:
        iop = _vec(ds.get("ImageOrientationPatient"))
        ipp = _vec(ds.get("ImagePositionPatient"))
        n = np.cross(iop[:3], iop[3:])
        return (float(ipp @ n), inst)
    except Exception:  # noqa: BLE001 -- no geometry: instance number alone
        return (inst, inst)


@dataclass
class _Group:
    headers: list[_Header] = field(default_factory=list)
    gt: list[_Header] = field(default_factory=list)

    @property
    def idents(self) -> set[str]:
        out: set[str] = set()
        for h in [*self.headers, *self.gt]:
            out |= h.idents
        return out


def _uid(ds: Any, kw: str) -> str:
    return str(ds.get(kw) or "")


class DicomReader:
    """Reader for ``format: dicom`` sources (see module docstring)."""

    def scan(self, source: SourceSpec) -> Iterator[ScanResult]:
        root = Path(source.path)
        allow_burned = bool(source.option("allow_burned_in", False))
        files = _list_files(root)
        base = root if root.is_dir() else root.parent
        headers: list[_Header] = []
        bad: list[Quarantined] = []
        for path in files:
            res = read_header(path)
            rel = os.path.relpath(path, base)
            if isinstance(res, Quarantined):
                res.rel_path = rel
                bad.append(res)
            else:
                headers.append(res)
        all_idents: set[str] = set()
        for h in headers:
            all_idents |= h.idents
        scrub = _scrubber(all_idents)

        def q(path: Path, error_class: str, reason: str) -> Quarantined:
            return Quarantined(scrub(os.path.relpath(path, base)), error_class, reason)

        for b in bad:
            yield Quarantined(scrub(b.rel_path), b.error_class, b.reason, b.stage)

        images: list[_Header] = []
        gts: list[_Header] = []
        for h in headers:
            if h.kind in ("seg", "rtstruct"):
                gts.append(h)
            elif h.error:
                yield q(h.path, *h.error)
            elif str(h.get("BurnedInAnnotation", "")).upper() == "YES" and not allow_burned:
                yield q(h.path, "burned_in_annotation", "BurnedInAnnotation is YES: the pixels may show "
                        "patient identifiers; set `options: {allow_burned_in: true}` on this source only if "
                        "the burned-in text is known to be free of identifiers")
            else:
                images.append(h)

        # --- build image items
        items: list[tuple[str, _Group]] = []  # (kind, group)
        series: dict[str, list[_Header]] = defaultdict(list)
        for h in images:
            if h.kind == "slice":
                # a series never spans patients: sample collections reuse one series UID across patients
                key = "|".join((str(h.get("PatientID") or ""), _uid(h, "StudyInstanceUID"),
                                _uid(h, "SeriesInstanceUID") or _uid(h, "SOPInstanceUID") or str(h.path)))
                series[key].append(h)
            elif h.kind == "multiframe":
                items.append(("dicom_multiframe", _Group([h])))
            else:
                items.append(("dicom_file", _Group([h])))
        for key in sorted(series, key=lambda k: str(series[k][0].path)):
            kept, rejected = self._consistent_slices(series[key])
            for h, error_class, reason in rejected:
                yield q(h.path, error_class, reason)
            if kept:
                items.append(("dicom_series", _Group(kept)))

        # --- attach ground truth to the item it references
        by_series: dict[str, list[int]] = defaultdict(list)
        by_sop: dict[str, int] = {}
        by_for: dict[str, set[int]] = defaultdict(set)
        for i, (_, g) in enumerate(items):
            for h in g.headers:
                by_series[_uid(h, "SeriesInstanceUID")].append(i)
                by_sop[_uid(h, "SOPInstanceUID")] = i
                if _uid(h, "FrameOfReferenceUID"):
                    by_for[_uid(h, "FrameOfReferenceUID")].add(i)
        for h in gts:
            target = self._gt_target(h, items, by_series, by_sop, by_for)
            if target is None:
                label = "SEG" if h.kind == "seg" else "RTSTRUCT"
                yield q(h.path, f"{h.kind}_images_missing",
                        f"{label} references an image series that is not in the source; add its images "
                        "(the whole series) to this source's folder")
            else:
                items[target][1].gt.append(h)

        # --- emit
        for kind, g in items:
            first = g.headers[0]
            ds = first
            idents = g.idents  # a subset of all_idents, which ``scrub`` already covers
            n_frames = int(ds.get("NumberOfFrames") or 1) if kind != "dicom_series" else len(g.headers)
            yield ItemRef(
                kind=kind,
                locator={
                    "files": [str(h.path) for h in g.headers],
                    "seg": [str(h.path) for h in g.gt if h.kind == "seg"],
                    "rtstruct": [str(h.path) for h in g.gt if h.kind == "rtstruct"],
                    "allow_burned_in": allow_burned,
                },
                rel_path=scrub(os.path.relpath(first.path, base)),
                subject_id=_subject(ds),
                study_id=_uid(ds, "StudyInstanceUID"),
                series_id=_uid(ds, "SeriesInstanceUID"),
                modality=str(ds.get("Modality") or source.modality or "") or None,
                n_files=len(g.headers),
                n_frames=n_frames,
                identifiers=tuple(sorted(idents)),
            )

    @staticmethod
    def _consistent_slices(hs: list[_Header]) -> tuple[list[_Header], list[tuple[_Header, str, str]]]:
        """Keep the slices that share the majority size and orientation and distinct positions."""
        rejected: list[tuple[_Header, str, str]] = []

        def size(h: _Header) -> tuple[int, int]:
            return (int(h.get("Rows") or 0), int(h.get("Columns") or 0))

        def orient(h: _Header) -> tuple[float, ...]:
            try:
                return tuple(np.round(_vec(h.get("ImageOrientationPatient")), 3))
            except Exception:  # noqa: BLE001
                return ()

        common_size = Counter(size(h) for h in hs).most_common(1)[0][0]
        kept = []
        for h in hs:
            if size(h) != common_size:
                rejected.append((h, "series_size_mismatch", f"slice is {size(h)[0]}x{size(h)[1]} while the rest "
                                 f"of its series is {common_size[0]}x{common_size[1]}; skipped, the series "
                                 "was kept without it"))
            else:
                kept.append(h)
        common_orient = Counter(orient(h) for h in kept).most_common(1)[0][0] if kept else ()
        same = []
        for h in kept:
            if orient(h) != common_orient:
                rejected.append((h, "series_orientation_mismatch", "slice orientation differs from the rest of "
                                 "its series (a localiser?); skipped, the series was kept without it"))
            else:
                same.append(h)
        keys = {id(h): _slice_sort_key(h) for h in same}
        same.sort(key=lambda h: (keys[id(h)], str(h.path)))
        out: list[_Header] = []
        seen_sop: set[str] = set()
        seen_pos: set[float] = set()
        for h in same:
            sop = _uid(h, "SOPInstanceUID")
            pos = round(keys[id(h)][0], 3)
            has_pos = "ImagePositionPatient" in h
            if sop and sop in seen_sop:
                rejected.append((h, "duplicate_instance", "same SOP instance as another file of the series "
                                 "(a copy); skipped"))
                continue
            if has_pos and pos in seen_pos:
                rejected.append((h, "duplicate_position", "another slice of the series lies at the same position "
                                 "(repeat/echo); only the first was kept"))
                continue
            seen_sop.add(sop)
            seen_pos.add(pos)
            out.append(h)
        return out, rejected

    @staticmethod
    def _gt_target(h: _Header, items, by_series, by_sop, by_for) -> int | None:
        ser, sops, fors = h.ref_series, h.ref_sops, h.ref_fors
        hits = Counter(by_sop[s] for s in sops if s in by_sop)
        if hits:
            return hits.most_common(1)[0][0]
        for s in sorted(ser):
            if by_series.get(s):
                return by_series[s][0]
        for f in sorted(fors):
            cand = by_for.get(f, set())
            if len(cand) == 1:
                return next(iter(cand))
        return None

    # ------------------------------------------------------------ load

    def load(self, source: SourceSpec, ref: ItemRef) -> ReadItem:
        files = [Path(p) for p in ref.locator["files"]]
        allow_burned = bool(ref.locator.get("allow_burned_in", source.option("allow_burned_in", False)))
        datasets = []
        for p in files:
            try:
                datasets.append(pydicom.dcmread(p, force=True))
            except Exception as exc:  # noqa: BLE001
                raise ReadError("truncated_dicom", f"cannot read a file of this item ({type(exc).__name__}); "
                                "copy it again") from None
        burned = any(str(ds.get("BurnedInAnnotation", "")).upper() == "YES" for ds in datasets)
        if burned and not allow_burned:
            raise ReadError("burned_in_annotation", "BurnedInAnnotation is YES; set options.allow_burned_in: true "
                            "on this source only if the burned-in text holds no identifiers")
        gt = {"seg": list(ref.locator.get("seg") or []), "rtstruct": list(ref.locator.get("rtstruct") or [])}
        if ref.kind == "dicom_series":
            item = self._load_series(datasets, gt)
        elif ref.kind == "dicom_multiframe":
            item = self._load_multiframe(datasets[0], gt)
        else:
            item = self._load_single(datasets[0])
        item.burned_in_annotation = burned
        item.modality = item.modality or source.modality or "OT"
        item.organ = source.organ
        item.disease = source.disease
        return item

    # decoding --------------------------------------------------------

    @staticmethod
    def _decode(ds: Dataset) -> np.ndarray:
        """Pixels as stored (YBR_* converted to RGB by pydicom's convert_color_space)."""
        ts = _transfer_syntax(ds)
        if not any(t in ds for t in PIXEL_TAGS):
            raise ReadError("no_pixel_data", "the object has no PixelData element; it is not an image")
        _ensure_transfer_syntax(ds)
        problem = _decoder_problem(ds)
        if problem:
            raise ReadError(*problem)
        try:
            from pydicom.pixels import pixel_array

            arr = pixel_array(ds)  # not ds.pixel_array: no second copy cached on the dataset
            if str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
                arr = _palette_to_rgb(arr, ds)
        except NotImplementedError:
            raise ReadError("undecodable_transfer_syntax", plugin_hint(ts)) from None
        except Exception as exc:  # noqa: BLE001 -- every decoder failure becomes a reason
            msg = str(exc).lower()
            if "all available plugins" in msg:
                raise ReadError("decode_failed", f"the installed decoders for {UID(ts).name} ({ts}) all failed on "
                                "this file (damaged or unusual bitstream); python-gdcm may decode it, otherwise "
                                "re-export the image uncompressed") from None
            short = any(w in msg for w in ("length", "bytes", "size", "shape", "truncat", "end of"))
            raise ReadError("pixel_data_short" if short else "decode_failed",
                            f"pixel data cannot be decoded ({type(exc).__name__}, {UID(ts).name}): the header and "
                            "the stored pixels disagree or the data is damaged -- re-export the file") from None
        return np.asarray(arr)

    @staticmethod
    def _monochrome1(arr: np.ndarray, ds: Dataset) -> np.ndarray:
        if str(ds.get("PhotometricInterpretation", "")).upper() != "MONOCHROME1":
            return arr
        bits = int(ds.get("BitsStored") or 16)
        if int(ds.get("PixelRepresentation") or 0) == 1:
            lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        else:
            lo, hi = 0, 2**bits - 1
        return (hi + lo) - arr.astype(np.int64)

    @staticmethod
    def _rescale_frame(arr: np.ndarray, ds: Dataset, frame_group: Dataset | None = None) -> np.ndarray:
        """Modality LUT: per-frame / shared PixelValueTransformation for enhanced objects, else top level."""
        item = dicom_gt._group_item(ds, frame_group, "PixelValueTransformationSequence")  # noqa: SLF001
        if item is not None and "RescaleSlope" in item:
            slope = float(item.get("RescaleSlope", 1) or 1)
            inter = float(item.get("RescaleIntercept", 0) or 0)
            return arr.astype(np.float32) * np.float32(slope) + np.float32(inter)
        if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
            from pydicom.pixels import apply_modality_lut

            return np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
        return arr.astype(np.float32)

    # items -------------------------------------------------------------

    def _base_meta(self, ds: Dataset) -> dict[str, Any]:
        meta = allowed_meta(ds)
        # belt and braces: an allowed text field that repeats an identifier of this header is dropped
        variants = [v.lower() for v in deid.identifier_variants(identifier_values(ds))]
        for key in [k for k, v in meta.items() if isinstance(v, str) and not k.startswith("TransferSyntax")]:
            if any(v in meta[key].lower() for v in variants):
                del meta[key]
        if meta.get("BodyPartExamined"):  # the lower-case key other readers also fill
            meta["body_part"] = str(meta["BodyPartExamined"]).lower()
        meta["monochrome1_inverted"] = str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1"
        return meta

    def _load_series(self, datasets: list[Dataset], gt: dict[str, list[str]]) -> ReadItem:
        datasets = sorted(datasets, key=_slice_sort_key)
        first = datasets[0]
        slices: list[np.ndarray] = []
        kept: list[Dataset] = []
        failures: list[str] = []
        for ds in datasets:
            try:
                arr = self._decode(ds)
            except ReadError as exc:
                failures.append(exc.reason)
                continue
            arr = self._rescale_frame(self._monochrome1(arr, ds), ds)
            for tag in PIXEL_TAGS:  # the stored bytes are no longer needed: free them slice by slice
                if tag in ds:
                    del ds[tag]
            slices.append(arr)
            kept.append(ds)
        if not slices:
            raise ReadError("decode_failed", failures[0] if failures else "no slice could be decoded")
        shape = Counter(s.shape for s in slices).most_common(1)[0][0]
        pairs = [(s, d) for s, d in zip(slices, kept) if s.shape == shape]
        vol = np.stack([s for s, _ in pairs]).astype(np.float32)
        kept = [d for _, d in pairs]
        meta = self._base_meta(first)
        meta["n_slices"] = len(kept)
        if failures:
            meta["slices_failed"] = len(failures)
        grid = _series_grid(kept)
        return self._finish(vol, first, meta, grid, gt)

    def _load_multiframe(self, ds: Dataset, gt: dict[str, list[str]]) -> ReadItem:
        arr = self._decode(ds)
        frames = int(ds.get("NumberOfFrames") or 1)
        rgb = int(ds.get("SamplesPerPixel") or 1) == 3 or \
            str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR"
        if frames == 1:
            arr = arr[None]
        per_frame = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
        meta = self._base_meta(ds)
        if rgb:  # a colour cine/stack: the contract has no RGB volume, keep the first frame as a 2D image
            meta["rgb"] = True
            meta["frames_in_object"] = frames
            return self._finish_2d(arr[0].astype(np.float32), ds, meta, None, None)
        out = np.empty(arr.shape, dtype=np.float32)
        arr = self._monochrome1(arr, ds)
        for i in range(arr.shape[0]):
            out[i] = self._rescale_frame(arr[i], ds, per_frame[i] if i < len(per_frame) else None)
        grid, order, dropped = _multiframe_grid(ds)
        if grid is not None:
            out = out[order]
            if dropped:
                meta["frames_dropped_same_position"] = dropped
        meta["n_slices"] = int(out.shape[0])
        return self._finish(out, ds, meta, grid, gt)

    def _load_single(self, ds: Dataset) -> ReadItem:
        arr = self._decode(ds)
        meta = self._base_meta(ds)
        rgb = arr.ndim == 3 and arr.shape[-1] == 3 and (
            int(ds.get("SamplesPerPixel") or 1) == 3
            or str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR")
        if rgb:
            meta["rgb"] = True
            pixels = arr.astype(np.float32)
        else:
            if arr.ndim == 3:  # a multi-frame object whose header says 1 frame per decode: keep the first
                arr = arr[0]
            pixels = self._rescale_frame(self._monochrome1(arr, ds), ds)
        return self._finish_2d(pixels, ds, meta, None, None)

    # geometry ------------------------------------------------------------

    def _finish(self, vol: np.ndarray, ds: Dataset, meta: dict[str, Any], grid: dicom_gt.ImageGrid | None,
                gt: dict[str, list[str]]) -> ReadItem:
        """Label maps on the native grid, then the same canonical reorientation for both."""
        label_map, label_names = self._ground_truth(grid, gt)
        modality = str(ds.get("Modality") or "") or None
        thickness = _float(ds.get("SliceThickness"))
        if grid is None:
            # no patient geometry: keep the stored order; in-plane spacing if the header has it
            ps = _pixel_spacing(ds)
            z = _float(ds.get("SpacingBetweenSlices"))
            if vol.shape[0] == 1:
                return self._finish_2d(vol[0], ds, meta, label_map[0] if label_map is not None else None, label_names)
            return ReadItem(pixels=vol, modality=modality or "", spacing=(z, ps[0], ps[1]), slice_thickness=thickness,
                            meta=meta, label_map=label_map, label_names=label_names)
        if vol.shape[0] == 1:
            return self._finish_2d(vol[0], ds, meta, label_map[0] if label_map is not None else None, label_names,
                                   dirs=(grid.col_dir, grid.row_dir))
        dz = grid.slice_spacing()
        if not np.isfinite(dz) or dz <= 0:
            dz = _first_positive(_float(ds.get("SpacingBetweenSlices")), thickness)
        dirs = [grid.normal, grid.col_dir, grid.row_dir]
        in_plane = _pixel_spacing(ds)  # NaN when the header does not say (the grid then assumed 1 mm)
        spacing = [dz, in_plane[0], in_plane[1]]
        perm, flips, obliquity = canonical_transform(dirs)
        vol = _apply(vol, perm, flips)
        if label_map is not None:
            label_map = _apply(label_map, perm, flips)
        if obliquity > 1.0:
            meta["oblique_deg"] = round(obliquity, 1)
        return ReadItem(pixels=np.ascontiguousarray(vol, dtype=np.float32), modality=modality or "",
                        spacing=tuple(float(spacing[p]) for p in perm), col_toward="L", row_toward="P",
                        slice_toward="S", slice_thickness=thickness, meta=meta,
                        label_map=None if label_map is None else np.ascontiguousarray(label_map),
                        label_names=label_names)

    def _finish_2d(self, img: np.ndarray, ds: Dataset, meta: dict[str, Any], label_map: np.ndarray | None,
                   label_names: dict[int, str] | None, dirs: tuple[np.ndarray, np.ndarray] | None = None,
                   spacing: tuple[float, float] | None = None) -> ReadItem:
        modality = str(ds.get("Modality") or "")
        if spacing is None:
            spacing = _pixel_spacing(ds)
        if dirs is None and "ImageOrientationPatient" in ds:
            iop = _vec(ds.ImageOrientationPatient)
            dirs = (iop[3:], iop[:3])
        letters: tuple[str, str] | None = None
        if dirs is not None:
            letters = (direction_letter(dirs[0]), direction_letter(dirs[1]))
        else:
            letters = _patient_orientation_letters(ds)
        row_toward = col_toward = ""
        if letters is not None:
            transpose, flip_rows, flip_cols, (row_toward, col_toward) = canonical_2d(*letters)
            img = _apply_2d(img, transpose, flip_rows, flip_cols)
            if label_map is not None:
                label_map = _apply_2d(label_map, transpose, flip_rows, flip_cols)
            if transpose:
                spacing = (spacing[1], spacing[0])
        return ReadItem(pixels=np.ascontiguousarray(img, dtype=np.float32), modality=modality,
                        spacing=(float(spacing[0]), float(spacing[1])), col_toward=col_toward,
                        row_toward=row_toward, slice_thickness=_float(ds.get("SliceThickness")), meta=meta,
                        label_map=None if label_map is None else np.ascontiguousarray(label_map),
                        label_names=dict(label_names or {}))

    def _ground_truth(self, grid: dicom_gt.ImageGrid | None, gt: dict[str, list[str]]):
        paths_seg = gt.get("seg", [])
        paths_rt = gt.get("rtstruct", [])
        if not paths_seg and not paths_rt:
            return None, {}
        if grid is None:
            raise ReadError("gt_without_geometry", "the image has no patient geometry (position/orientation), "
                            "so its SEG/RTSTRUCT cannot be placed on it")
        parts = []
        for p in paths_seg:
            try:
                lm, names, _ = dicom_gt.seg_to_label_map(pydicom.dcmread(p, force=True), grid)
            except (dicom_gt.GroundTruthError, Exception) as exc:  # noqa: BLE001
                raise ReadError("seg_unreadable", f"its SEG cannot be placed on the images: "
                                f"{exc if isinstance(exc, dicom_gt.GroundTruthError) else type(exc).__name__}") from None
            parts.append((lm, names))
        for p in paths_rt:
            try:
                lm, names, _ = dicom_gt.rtstruct_to_label_map(pydicom.dcmread(p, force=True), grid)
            except Exception as exc:  # noqa: BLE001
                raise ReadError("rtstruct_unreadable", f"its RTSTRUCT cannot be rasterised ({type(exc).__name__})") from None
            parts.append((lm, names))
        return dicom_gt.merge_label_maps(parts)


def _float(v: Any) -> float:
    try:
        f = float(v)
        return f if np.isfinite(f) else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _palette_to_rgb(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """PALETTE COLOR indices through the colour lookup table, as 8-bit RGB."""
    from pydicom.pixels import apply_color_lut

    rgb = np.asarray(apply_color_lut(arr, ds), dtype=np.float32)
    bits = int(ds.RedPaletteColorLookupTableDescriptor[2]) if "RedPaletteColorLookupTableDescriptor" in ds else 8
    if bits > 8 or rgb.max() > 255:  # 16-bit entries: either value<<8 or value*257
        rgb = rgb / 256.0 if not np.any(np.mod(rgb, 256)) else rgb / 257.0
    return np.clip(rgb, 0, 255)


def _first_positive(*values: float) -> float:
    for v in values:
        if np.isfinite(v) and v > 0:
            return float(v)
    return float("nan")


def _pixel_spacing(ds: Dataset) -> tuple[float, float]:
    for kw in ("PixelSpacing", "ImagerPixelSpacing"):
        v = ds.get(kw)
        if v is not None and len(v) == 2:
            r, c = _float(v[0]), _float(v[1])
            if r > 0 and c > 0:
                return (r, c)
    for seq in ("SharedFunctionalGroupsSequence",):
        g = ds.get(seq)
        if g and g[0].get("PixelMeasuresSequence"):
            v = g[0].PixelMeasuresSequence[0].get("PixelSpacing")
            if v is not None and len(v) == 2 and _float(v[0]) > 0:
                return (_float(v[0]), _float(v[1]))
    return (float("nan"), float("nan"))


def _series_grid(datasets: list[Dataset]) -> dicom_gt.ImageGrid | None:
    first = datasets[0]
    if "ImageOrientationPatient" not in first:
        return None
    iop = _vec(first.ImageOrientationPatient)
    ps = _pixel_spacing(first)
    if not np.all(np.isfinite(ps)):
        ps = (1.0, 1.0)
    if all("ImagePositionPatient" in d for d in datasets):
        origins = np.stack([_vec(d.ImagePositionPatient) for d in datasets])
    else:  # instance-number order: synthesise positions from the spacing the header states
        n = np.cross(iop[:3], iop[3:])
        dz = _first_positive(_float(first.get("SpacingBetweenSlices")), _float(first.get("SliceThickness")), 1.0)
        start = _vec(first.ImagePositionPatient) if "ImagePositionPatient" in first else np.zeros(3)
        origins = np.stack([start + k * dz * n for k in range(len(datasets))])
    return dicom_gt.ImageGrid(origins, iop[:3], iop[3:], ps, int(first.Rows), int(first.Columns),
                              [str(d.get("SOPInstanceUID", "")) for d in datasets])


def _multiframe_grid(ds: Dataset) -> tuple[dicom_gt.ImageGrid | None, list[int], int]:
    """Geometry of an enhanced/multi-frame object: (grid, frame order along the normal, frames dropped)."""
    frames = int(ds.get("NumberOfFrames") or 1)
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    positions: list[np.ndarray] = []
    iop = None
    if per_frame:
        for fg in per_frame[:frames]:
            pos = dicom_gt._group_item(ds, fg, "PlanePositionSequence")  # noqa: SLF001
            ori = dicom_gt._group_item(ds, fg, "PlaneOrientationSequence")  # noqa: SLF001
            if pos is None or ori is None:
                return None, list(range(frames)), 0
            positions.append(_vec(pos.ImagePositionPatient))
            iop = _vec(ori.ImageOrientationPatient) if iop is None else iop
    elif "ImageOrientationPatient" in ds and "ImagePositionPatient" in ds:
        iop = _vec(ds.ImageOrientationPatient)
        n = np.cross(iop[:3], iop[3:])
        offsets = ds.get("GridFrameOffsetVector")
        if offsets is not None and len(offsets) == frames:
            steps = [float(o) for o in offsets]
        else:
            dz = _float(ds.get("SpacingBetweenSlices"))
            if not np.isfinite(dz):
                return None, list(range(frames)), 0
            steps = [k * dz for k in range(frames)]
        start = _vec(ds.ImagePositionPatient)
        positions = [start + s * n for s in steps]
    else:
        return None, list(range(frames)), 0
    assert iop is not None
    n = np.cross(iop[:3], iop[3:])
    proj = [round(float(p @ n), 3) for p in positions]
    order: list[int] = []
    seen: set[float] = set()
    for i in sorted(range(len(proj)), key=lambda i: (proj[i], i)):
        if proj[i] in seen:
            continue
        seen.add(proj[i])
        order.append(i)
    ps = _pixel_spacing(ds)
    if not np.all(np.isfinite(ps)):
        ps = (1.0, 1.0)
    sop = str(ds.get("SOPInstanceUID", ""))
    grid = dicom_gt.ImageGrid(np.stack([positions[i] for i in order]), iop[:3], iop[3:], ps,
                              int(ds.Rows), int(ds.Columns), [sop] * len(order))
    return grid, order, len(positions) - len(order)


# ---------------------------------------------------------------- canonical orientation

_POS = "LPS"
_NEG = "RAI"


def direction_letter(v: np.ndarray) -> str:
    """Patient direction (L R P A S I) a unit vector mostly points to."""
    i = int(np.argmax(np.abs(v)))
    return _POS[i] if v[i] > 0 else _NEG[i]


def canonical_transform(dirs: list[np.ndarray]) -> tuple[tuple[int, int, int], tuple[bool, bool, bool], float]:
    """Permutation and flips taking axes with directions ``dirs`` to (S, P, L) i.e. slices->S,
    rows->P, cols->L; also the largest angle (deg) between an axis and its patient axis."""
    target = (2, 1, 0)  # patient z, y, x for new axes 0, 1, 2
    best = max(itertools.permutations(range(3)),
               key=lambda p: sum(abs(dirs[p[i]][target[i]]) for i in range(3)))
    flips = tuple(bool(dirs[best[i]][target[i]] < 0) for i in range(3))
    cosines = [abs(dirs[best[i]][target[i]]) / (np.linalg.norm(dirs[best[i]]) or 1.0) for i in range(3)]
    obliquity = float(np.degrees(np.arccos(np.clip(min(cosines), -1, 1))))
    return tuple(best), flips, obliquity  # type: ignore[return-value]


def _apply(arr: np.ndarray, perm: tuple[int, ...], flips: tuple[bool, ...]) -> np.ndarray:
    out = np.transpose(arr, perm)
    for axis, f in enumerate(flips):
        if f:
            out = np.flip(out, axis=axis)
    return out


_OPPOSITE = {"L": "R", "R": "L", "P": "A", "A": "P", "S": "I", "I": "S"}


def canonical_2d(row_letter: str, col_letter: str) -> tuple[bool, bool, bool, tuple[str, str]]:
    """How to show a 2D image in the standard radiological display.

    ``row_letter`` is the patient direction of increasing row index, ``col_letter`` of increasing
    column index. Columns get the left-right axis when there is one (else anterior-posterior);
    then every axis is flipped to point to L, P or I (axial: cols->L rows->P; coronal: cols->L
    rows->I; sagittal: cols->P rows->I). Returns (transpose, flip_rows, flip_cols, (row, col) letters).
    """
    def rank(letter: str) -> int:
        return {"L": 0, "R": 0, "A": 1, "P": 1, "S": 2, "I": 2}.get(letter, 3)

    transpose = rank(row_letter) < rank(col_letter)
    if transpose:
        row_letter, col_letter = col_letter, row_letter
    flip_rows = row_letter in ("R", "A", "S")
    flip_cols = col_letter in ("R", "A", "S")
    if flip_rows:
        row_letter = _OPPOSITE[row_letter]
    if flip_cols:
        col_letter = _OPPOSITE[col_letter]
    return transpose, flip_rows, flip_cols, (row_letter, col_letter)


def _apply_2d(img: np.ndarray, transpose: bool, flip_rows: bool, flip_cols: bool) -> np.ndarray:
    if transpose:
        img = np.swapaxes(img, 0, 1)
    if flip_rows:
        img = img[::-1]
    if flip_cols:
        img = img[:, ::-1]
    return img


def _patient_orientation_letters(ds: Dataset) -> tuple[str, str] | None:
    """(row, col) letters from PatientOrientation (projection radiographs): first value is the
    direction of the rows (increasing column index), second of the columns (increasing row index)."""
    po = ds.get("PatientOrientation")
    if not po or len(po) != 2:
        return None
    conv = {"H": "S", "F": "I", "L": "L", "R": "R", "A": "A", "P": "P"}
    col = conv.get(str(po[0])[:1].upper())
    row = conv.get(str(po[1])[:1].upper())
    if not col or not row:
        return None
    return (row, col)
