"""One file in, a usable :class:`~.headers.Header` or a quarantine row out: the DICOM scan's triage.

pydicom reads the header (a small file from memory, in one read; a large one in place with its
pixel data deferred); nothing is decoded. The file is then classified -- a slice of a series, a
multi-frame object, a single image, a SEG or RTSTRUCT, or an object that is not an image -- and
checked: stored pixels as long as the header says, a header that can describe a real image
(:mod:`.validity`), a decoder for its transfer syntax.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medtrinity_assets.formats.base import Quarantined
from medtrinity_assets.formats.dicom import ground_truth, pixels, validity
from medtrinity_assets.formats.dicom.headers import (
    MODALITY_LUT_TAG,
    NON_IMAGE_MODALITIES,
    PER_FRAME_TAG,
    PROJECTION_MODALITIES,
    RTSTRUCT_SOP,
    SEG_SOP,
    Header,
    looks_like_dicom,
    pixel_location,
    summary,
    transfer_syntax,
)
from medtrinity_assets.formats.dicom.identifiers import identifier_values

IN_MEMORY_BYTES = 16 * 1024 * 1024  # a slice or a small multi-frame object; larger files are read in place


def _source(path: Path, size: int) -> Path | io.BytesIO:
    """What pydicom reads: a small file in one read (the parser's thousands of tell/seek/read calls
    then stay in memory: about 40 % faster), a large one in place with its pixel data deferred."""
    if size <= IN_MEMORY_BYTES:
        return io.BytesIO(path.read_bytes())
    return path


def read_header(path: Path) -> Header | Quarantined:
    """One file's header with its pixel data deferred; quarantine rows are returned unscrubbed."""
    rel = str(path)
    try:
        stat = path.stat()
    except OSError as exc:
        return Quarantined(rel, "unreadable_file", f"cannot stat the file ({exc.strerror}); check permissions")
    if stat.st_size == 0:
        return Quarantined(rel, "empty_file", "the file is empty (0 bytes); re-export or remove it")
    ds: Dataset | None = None
    try:
        ds = pydicom.dcmread(_source(path, stat.st_size), defer_size=1024)
    except InvalidDicomError:
        try:
            ds = pydicom.dcmread(_source(path, stat.st_size), defer_size=1024, force=True)
        except Exception:  # noqa: BLE001 -- anything pydicom throws on random bytes
            ds = None
        if ds is not None and not looks_like_dicom(ds):
            ds = None
        if ds is None:
            return Quarantined(rel, "not_dicom", "not a DICOM file (no 'DICM' marker and no DICOM image "
                               "elements); remove it from the source folder")
    except Exception as exc:  # noqa: BLE001 -- a damaged header
        return Quarantined(rel, "truncated_dicom", f"the DICOM header cannot be parsed ({type(exc).__name__}); "
                           "the file is truncated or damaged -- copy it again")
    if not looks_like_dicom(ds):
        return Quarantined(rel, "truncated_dicom", "the file has a DICOM marker but its header ends before "
                           "the SOP class and image elements: it is truncated; copy it again or remove it")
    try:
        idents = identifier_values(ds)
    except Exception:  # noqa: BLE001
        idents = set()
    h = Header(path, summary(ds), idents, transfer_syntax=transfer_syntax(ds))
    sop = h.get("SOPClassUID", "")
    modality = str(h.get("Modality", "")).upper()
    if sop == SEG_SOP or modality == "SEG":
        h.kind = "seg"
        h.ref_series, h.ref_sops = ground_truth.seg_referenced(ds)
        h.ref_fors = {str(h.get("FrameOfReferenceUID", ""))} - {""}
    elif sop == RTSTRUCT_SOP or modality == "RTSTRUCT":
        h.kind = "rtstruct"
        h.ref_series, h.ref_sops, h.ref_fors = ground_truth.rtstruct_referenced(ds)
    elif modality in NON_IMAGE_MODALITIES:
        h.error = ("not_an_image", f"{modality or 'this'} object is not an image this pipeline describes; "
                   "leave it out of image sources")
    else:
        h.error = (pixels.stored_size_problem(ds, h.info, stat.st_size) or validity.header_problem(h.info)
                   or pixels.decoder_problem(h.transfer_syntax))
        h.pixels = pixel_location(ds, path, stat.st_size, stat.st_mtime_ns)
        h.modality_lut = MODALITY_LUT_TAG in ds._dict  # noqa: SLF001
        frames = int(h.get("NumberOfFrames", 1) or 1)
        enhanced = PER_FRAME_TAG in ds._dict  # noqa: SLF001
        has_plane = "ImagePositionPatient" in h and "ImageOrientationPatient" in h
        if frames > 1 or enhanced:
            h.kind = "multiframe"
        elif has_plane and modality not in PROJECTION_MODALITIES:
            h.kind = "slice"
        else:
            h.kind = "single"
    return h
