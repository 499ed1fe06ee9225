"""NIfTI volumes (``.nii`` / ``.nii.gz``) with optional label maps and a label CSV.

Orientation: the file's affine (RAS) is turned into the LPS one and goes through the shared affine
path of :mod:`.orientation` -- the same as DICOM's -- to the project's ``(Z, H, W)`` order (columns
toward the patient's Left, rows toward Posterior, slices toward Superior). A volume stored RAS and
the same volume stored LPS therefore give identical arrays, and "the blob is in the patient's left"
is a fact about column indices. A file with neither qform nor sform code says nothing about the
patient, so its orientation is reported unknown (''). An affine that maps voxels nowhere (an sform
of zeros or NaN) or a zero/NaN voxel size quarantines the file, naming the header field.

Label maps live in ``source.labels`` under the same file name. A label map whose (canonical)
shape differs from its image quarantines the *pair*: the source promises ground truth, and keeping
the image without its labels would present a lesion-bearing volume as one without findings.

``scan`` reads headers only (and checks that a ``.nii.gz`` is gzip, that an uncompressed file
holds as many bytes as its header announces); ``load`` decodes, and reports truncated gzip streams,
all-NaN volumes and malformed label maps as :class:`ReadError`.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medtrinity_assets.config import SourceOptions, SourceSpec
from medtrinity_assets.deid import scrub
from medtrinity_assets.formats import safety
from medtrinity_assets.formats.base import MAX_LABEL_VALUE, ItemRef, Quarantined, ReadError, ReadItem, ScanResult, relative
from medtrinity_assets.formats.label_table import LabelRow, read_label_table, row_meta, row_quarantine, rows_by_target
from medtrinity_assets.formats.orientation import (
    CANONICAL_TOWARD,
    GeometryError,
    Reorientation,
    check_affine,
    obliquity_deg,
    ras_to_lps,
    reorientation,
)

_DECODE_ERRORS = (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, MemoryError)


def is_nifti_name(name: str) -> bool:
    low = name.lower()
    return low.endswith(".nii") or low.endswith(".nii.gz")


def nifti_stem(name: str) -> str:
    low = name.lower()
    for suffix in (".nii.gz", ".nii"):
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


@dataclass(frozen=True)
class NiftiHeader:
    shape: tuple[int, ...]  # as stored
    canonical_shape: tuple[int, int, int]  # (Z, H, W) after reorientation of the first volume
    n_volumes: int
    axcodes: str  # stored orientation, e.g. 'LAS'; '' when the file does not say
    version: str  # nifti1 | nifti2


def _max_voxels(options: SourceOptions) -> int:
    """The source's ``max_voxels`` (a positive integer, checked at load), or the reader's default."""
    return options.max_voxels if options.max_voxels is not None else safety.DEFAULT_MAX_VOXELS


def _orientation_known(header) -> bool:
    try:
        return int(header["qform_code"]) > 0 or int(header["sform_code"]) > 0
    except (KeyError, TypeError, ValueError):
        return False


def _affine_source(header) -> str:
    """The header fields nibabel takes the affine from (named in reasons)."""
    try:
        if int(header["sform_code"]) > 0:
            return "sform (srow_x, srow_y, srow_z)"
        if int(header["qform_code"]) > 0:
            return "qform (quatern_b/c/d, qoffset_x/y/z and pixdim)"
    except (KeyError, TypeError, ValueError):
        pass
    return "pixdim"


def geometry_of(img, shape: tuple[int, ...], name: str, what: str) -> Reorientation:
    """How the image reaches canonical order; ReadError when its header maps voxels nowhere."""
    header = img.header
    try:
        affine = np.asarray(img.affine, dtype=np.float64)
        check_affine(affine)
    except (GeometryError, TypeError, ValueError) as exc:
        raise ReadError("impossible_geometry", f"{what} {name}: the {_affine_source(header)} of the header gives "
                        f"no usable voxel-to-patient mapping ({exc}); fix the header or re-export the file") from None
    zooms = [float(z) for z in header.get_zooms()[:3]]
    for i, z in enumerate(zooms):
        if i < len(shape) and shape[i] > 1 and (not np.isfinite(z) or z == 0):
            raise ReadError("impossible_geometry", f"{what} {name}: pixdim[{i + 1}] (the voxel size along axis {i}) "
                            f"is {z:g}; voxels must be a finite, non-zero distance apart -- fix the header")
    return reorientation(ras_to_lps(affine))


def probe_nifti(path: Path, max_voxels: int = safety.DEFAULT_MAX_VOXELS, what: str = "volume") -> NiftiHeader:
    """Header facts from a cheap read; raises ReadError for anything that will not load."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    p = Path(path)
    size = safety.check_file(p, what)
    compressed = p.name.lower().endswith(".gz")
    if compressed:
        with open(p, "rb") as fh:
            magic = fh.read(2)
        if magic != b"\x1f\x8b":
            raise ReadError("not_gzip", f"{what} {p.name} ends in .gz but is not gzip-compressed; "
                                        "rename it to .nii if it is plain NIfTI, or re-export it")
    try:
        img = nib.load(str(p))
        header = img.header
        shape = tuple(int(s) for s in img.shape)
        affine = img.affine
    except (ImageFileError, *_DECODE_ERRORS, KeyError) as exc:
        cls = "truncated" if compressed and isinstance(exc, (EOFError, zlib.error)) else "unreadable_header"
        detail = str(exc).replace(str(p), p.name)  # the folder path may hold identifiers
        raise ReadError(cls, f"{what} {p.name}: NIfTI header could not be read ({detail}); re-export the file") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ReadError("not_nifti", f"{what} {p.name} is {type(img).__name__}, not NIfTI")
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise ReadError("bad_shape", f"{what} {p.name} has shape {shape}; a volume needs at least 2 axes")
    spatial = list(shape[:3]) + [1] * (3 - min(3, len(shape)))
    n_volumes = int(np.prod(shape[3:])) if len(shape) > 3 else 1
    voxels = int(np.prod(spatial))
    if voxels > max_voxels:
        raise ReadError("too_large", f"{what} {p.name} has {voxels} voxels per volume, over the limit of "
                                     f"{max_voxels}; raise the source option max_voxels if it is genuine")
    if not compressed:
        itemsize = np.dtype(header.get_data_dtype()).itemsize
        expected = int(header.get_data_offset()) + int(np.prod(shape)) * itemsize
        if size < expected:
            raise ReadError("truncated", f"{what} {p.name} holds {size} bytes but its header announces {expected}; "
                                         "the file is cut short, copy it again")
    turn = geometry_of(img, shape, p.name, what)
    known = _orientation_known(header)
    axcodes = "".join(nib.aff2axcodes(affine)) if known else ""
    version = "nifti2" if isinstance(img, nib.Nifti2Image) else "nifti1"
    return NiftiHeader(shape, turn.order(spatial), n_volumes, axcodes, version)


def check_gzip_stream(path: Path, what: str = "volume") -> None:
    """Decompress to the end (and check the CRC): nibabel reads only the bytes a slice needs, so a
    4D file cut after its first volume would otherwise load without complaint."""
    p = Path(path)
    try:
        with gzip.open(p, "rb") as fh:
            while fh.read(1 << 22):
                pass
    except (EOFError, OSError, zlib.error) as exc:
        raise ReadError("truncated", f"{what} {p.name}: the gzip stream is cut short or corrupt ({exc}); "
                                     "copy the file again") from None


IN_MEMORY_GZIP_BYTES = 1 << 30  # decompress once into memory below this size; stream-check above it


def _gunzip_checked(p: Path, what: str) -> bytes:
    try:
        return gzip.decompress(p.read_bytes())
    except (EOFError, OSError, zlib.error) as exc:
        raise ReadError("truncated", f"{what} {p.name}: the gzip stream is cut short or corrupt ({exc}); "
                                     "copy the file again") from None


def _gzip_size_hint(p: Path) -> int:
    """Uncompressed size from the gzip trailer (mod 4 GiB, so only a hint)."""
    with open(p, "rb") as fh:
        fh.seek(-4, 2)
        return int.from_bytes(fh.read(4), "little")


def _open_nifti(p: Path, what: str):
    """nibabel image of ``p``; a .nii.gz is read and CRC-checked in full exactly once.

    nibabel reads only the bytes a slice needs, so a 4D file cut after its first volume would
    otherwise load without complaint; decompressing to the end catches every truncation."""
    import nibabel as nib

    if not p.name.lower().endswith(".gz"):
        return nib.load(str(p))
    if p.stat().st_size > IN_MEMORY_GZIP_BYTES // 4 or _gzip_size_hint(p) > IN_MEMORY_GZIP_BYTES:
        check_gzip_stream(p, what)  # big file: check by streaming, then let nibabel read lazily
        return nib.load(str(p))
    raw = _gunzip_checked(p, what)
    sizeof_hdr = int.from_bytes(raw[:4], "little") if len(raw) >= 4 else 0
    if sizeof_hdr not in (348, 540):
        sizeof_hdr = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else 0
    cls = nib.Nifti2Image if sizeof_hdr == 540 else nib.Nifti1Image
    return cls.from_bytes(raw)


def load_canonical(
    path: Path, *, labels: bool = False, what: str = "volume"
) -> tuple[np.ndarray, tuple[float, float, float], dict[str, Any]]:
    """Decode the first volume of ``path`` into ``(Z, H, W)`` LPS order, with spacing ``(z, row, col)`` mm."""
    import nibabel as nib

    p = Path(path)
    meta: dict[str, Any] = {}
    try:
        img = _open_nifti(p, what)
        shape = img.shape
        geometry_of(img, tuple(shape), p.name, what)  # before anything else reads the affine
        known = _orientation_known(img.header)
        meta["orientation_known"] = known
        meta["orig_shape"] = [int(v) for v in shape]
        meta["orig_axcodes"] = "".join(nib.aff2axcodes(img.affine)) if known else ""
        if len(shape) > 3:
            img = img.slicer[(slice(None),) * 3 + (0,) * (len(shape) - 3)]
            meta["note"] = f"{len(shape)}D file: first of {int(np.prod(shape[3:]))} volumes used"
            meta["n_volumes"] = int(np.prod(shape[3:]))
        elif len(shape) == 2:
            img = nib.Nifti1Image(np.asanyarray(img.dataobj)[..., None], img.affine, img.header)
        zooms = [float(z) for z in img.header.get_zooms()[:3]] + [float("nan")] * 3
        turn = geometry_of(img, tuple(img.shape), p.name, what)
        data = np.asanyarray(img.dataobj) if labels else img.get_fdata(dtype=np.float32)
        affine = np.asarray(img.affine, dtype=np.float64)
    except _DECODE_ERRORS as exc:
        compressed = p.name.lower().endswith(".gz")
        cls = "truncated" if isinstance(exc, (EOFError, zlib.error)) or "end-of-stream" in str(exc) or (
            not compressed and "bytes" in str(exc)) else "unreadable_data"
        raise ReadError(cls, f"{what} {p.name}: voxel data could not be decoded ({exc}); "
                             "the file is probably truncated or corrupt, copy it again") from None
    arr = np.ascontiguousarray(turn.apply(data))
    # header zooms follow their axes into canonical (z, y, x) order
    spacing = tuple(round(z, 6) if np.isfinite(z) and z > 0 else float("nan") for z in turn.order(zooms[:3]))
    obliquity = obliquity_deg(affine)
    if max(obliquity) > np.degrees(1e-3):
        meta["oblique"] = True
        meta["obliquity_deg"] = [round(o, 3) for o in turn.order(obliquity)[::-1]]  # per patient x, y, z
    return arr, spacing, meta  # type: ignore[return-value]


def _as_label_map(raw: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(raw)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)):
            raise ReadError("bad_label_map", f"label map {name} holds NaN/Inf; labels must be integers")
        if not np.allclose(values, np.rint(values)):
            raise ReadError("bad_label_map", f"label map {name} holds fractional values; it looks like a "
                                             "probability map, threshold it to integer labels first")
        values = np.rint(values)
    elif values.dtype.kind not in "iub":
        raise ReadError("bad_label_map", f"label map {name} has data type {values.dtype}; labels must be integers")
    if values.size and values.min() < 0:
        raise ReadError("bad_label_map", f"label map {name} holds negative values; labels must be >= 0")
    top = int(values.max()) if values.size else 0
    if top > MAX_LABEL_VALUE:
        raise ReadError("label_value_too_large", f"label map {name} holds the value {top}, above {MAX_LABEL_VALUE:,}: "
                        "label slices are stored as 16-bit images; renumber the labels 1..N (and name them in the "
                        "source's label_names)")
    return values.astype(np.uint8 if top < 256 else np.uint16)


def load_volume_pair(
    image_path: Path,
    label_path: Path | None,
    *,
    modality: str,
    label_names: dict[int, str],
    image_what: str = "volume",
) -> ReadItem:
    """Decode an image volume and its optional label map into one canonical :class:`ReadItem`."""
    pixels, spacing, meta = load_canonical(image_path, what=image_what)
    known = bool(meta.pop("orientation_known"))
    finite = np.isfinite(pixels)
    if not finite.any():
        raise ReadError("all_nan", f"{image_what} {Path(image_path).name} holds no finite value (all NaN/Inf); "
                                   "re-export it")
    if not finite.all():
        meta["nonfinite_voxels_filled"] = int((~finite).sum())
        pixels = np.where(finite, pixels, np.float32(pixels[finite].min())).astype(np.float32)
    if not known:
        meta["orientation"] = "unknown: qform_code and sform_code are 0"
    label_map = None
    names = dict(label_names)
    if label_path is not None:
        raw, label_spacing, label_meta = load_canonical(label_path, labels=True, what="label map")
        if raw.shape != pixels.shape:
            raise ReadError(
                "label_shape_mismatch",
                f"label map {Path(label_path).name} has canonical shape {raw.shape} but image "
                f"{Path(image_path).name} has {pixels.shape}; both are quarantined -- regenerate the label map "
                "on the image grid",
            )
        if label_meta.get("orientation_known") != known:
            meta["label_orientation_known"] = bool(label_meta.get("orientation_known"))
        if "note" in label_meta:
            meta["label_note"] = label_meta["note"]
        label_map = _as_label_map(raw, Path(label_path).name)
        present = [int(v) for v in np.unique(label_map) if v != 0]
        missing = [v for v in present if v not in names]
        for v in missing:
            names[v] = f"label_{v}"
        if missing:
            meta["unnamed_label_values"] = missing
        if not np.allclose(np.nan_to_num(label_spacing), np.nan_to_num(spacing), rtol=1e-3, atol=1e-3):
            meta["label_spacing_differs"] = [float(s) for s in label_spacing]
    toward = CANONICAL_TOWARD if known else ("", "", "")
    return ReadItem(
        pixels=pixels,
        modality=modality,
        spacing=spacing,
        col_toward=toward[2],
        row_toward=toward[1],
        slice_toward=toward[0],
        slice_thickness=spacing[0],
        meta=meta,
        label_map=label_map,
        label_names={int(k): str(v) for k, v in names.items()} if label_map is not None else dict(names),
    )


def check_pair(image_path: Path, label_path: Path | None, max_voxels: int) -> NiftiHeader:
    """Scan-time check of an image and its label map (headers only)."""
    head = probe_nifti(image_path, max_voxels)
    if label_path is not None:
        lab = probe_nifti(label_path, max_voxels, what="label map")
        if lab.canonical_shape != head.canonical_shape:
            raise ReadError(
                "label_shape_mismatch",
                f"label map {Path(label_path).name} has canonical shape {lab.canonical_shape} but image "
                f"{Path(image_path).name} has {head.canonical_shape}; both are quarantined -- regenerate the "
                "label map on the image grid",
            )
    return head


class NiftiReader:
    """Reader for a folder of NIfTI volumes (see module docstring)."""

    kind = "nifti"

    def scan(self, source: SourceSpec) -> Iterator[ScanResult]:
        root = Path(source.path)
        if not root.is_dir():
            yield Quarantined("", "missing_source", f"source folder {root} does not exist; fix the source's path")
            return
        max_voxels = _max_voxels(source.options)
        label_root = Path(source.labels).resolve() if source.labels else None
        rows: dict[Path, LabelRow] = {}
        if source.labels_csv:
            try:
                table = read_label_table(source.labels_csv, source.options.extra_fields)
            except ReadError as err:
                yield Quarantined(Path(source.labels_csv).name, err.error_class, err.reason)
                table = []
            rows, bad = rows_by_target(table, lambda name: safety.inside_root(root, name, source.allow_links_into))
            for row, err in bad:
                yield row_quarantine(row.filename, err.error_class,
                                     f"{Path(source.labels_csv).name} line {row.line}: {err.reason}", row)
            for target, row in list(rows.items()):
                problem = None
                if not target.exists():
                    problem = ReadError("missing_file", f"{Path(source.labels_csv).name} line {row.line}: "
                                                        f"{row.filename!r} does not exist in the source folder")
                elif not is_nifti_name(target.name):
                    problem = ReadError("not_nifti", f"{Path(source.labels_csv).name} line {row.line}: "
                                                     f"{row.filename!r} is not a .nii/.nii.gz file")
                if problem:
                    del rows[target]
                    yield row_quarantine(row.filename, problem.error_class, problem.reason, row)
        files = []
        for p in sorted(root.rglob("*")):
            if not is_nifti_name(p.name) or p.name.startswith(".") or p.is_dir():
                continue
            if label_root is not None and (p.resolve() == label_root or label_root in p.resolve().parents):
                continue
            files.append(p)
        for p in files:
            rel = relative(p, root)
            try:
                yield self._scan_file(source, root, p, rel, rows, label_root, max_voxels)
            except Exception as exc:  # noqa: BLE001 -- one odd file never stops the scan
                yield Quarantined(rel, "unreadable_header", f"{p.name}: reading the header failed "
                                  f"({type(exc).__name__}: {str(exc)[:200]}); re-export the file")

    def _scan_file(self, source: SourceSpec, root: Path, p: Path, rel: str, rows: dict[Path, LabelRow],
                   label_root: Path | None, max_voxels: int) -> ScanResult:
        try:
            target = safety.check_listed_file(root, p, source.allow_links_into)
        except ReadError as err:
            return Quarantined(rel, err.error_class, err.reason)
        row = rows.get(target)
        label_path = None
        if label_root is not None:
            try:  # the same relative name under the labels folder, which must not lead out of it
                candidate = safety.inside_root(label_root, rel, source.allow_links_into)
            except ReadError as err:
                return row_quarantine(rel, err.error_class, f"label map of {rel}: {err.reason}", row)
            if candidate.exists():
                label_path = candidate
        try:
            head = check_pair(p, label_path, max_voxels)
        except ReadError as err:
            return row_quarantine(rel, err.error_class, err.reason, row)
        subject = row.subject if row and row.subject else nifti_stem(p.name)
        idents = (row.subject,) if row and row.subject else ()
        modality = (row.overrides.get("modality") if row else None) or source.modality
        return ItemRef(
            kind=self.kind,
            locator={"image": rel, "label": rel if label_path else None,
                     "row": _row_dict(row)},
            rel_path=scrub(rel, idents) if idents else rel,
            subject_id=subject,
            modality=modality,
            n_frames=head.canonical_shape[0],
            identifiers=idents,
        )

    def load(self, source: SourceSpec, ref: ItemRef) -> ReadItem:
        root = Path(source.path)
        image_path = safety.inside_root(root, ref.locator["image"], source.allow_links_into)
        label = ref.locator.get("label")
        if label and not source.labels:
            raise ReadError("missing_labels_folder", f"{label} has a label map but the source has no 'labels' folder")
        row = ref.locator.get("row") or {}
        overrides = row.get("overrides", {})
        item = load_volume_pair(
            image_path,
            safety.inside_root(Path(source.labels), label, source.allow_links_into) if label else None,
            modality=overrides.get("modality") or source.modality or "OT",
            label_names=source.label_names,
        )
        item.organ = overrides.get("organ") or source.organ
        item.disease = overrides.get("disease") or source.disease
        item.labels = list(row.get("labels", []))
        if row.get("fields"):
            item.meta["fields"] = dict(row["fields"])
        return item


def _row_dict(row: LabelRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"line": row.line, "overrides": dict(row.overrides), "labels": list(row.labels), **row_meta(row)}
