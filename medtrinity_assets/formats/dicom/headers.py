"""One DICOM file's header, read once at scan time: what the file is, whether it can be used, and
the few values that grouping, geometry and decoding need later -- not the dataset (a source may
hold 100k files).

Reading a file and deciding what it is lives in :mod:`.triage`; this module is what a header holds.
Only the keywords of :data:`SUMMARY_KEYWORDS` are converted, straight from the raw elements (numbers, codes and UIDs from their bytes, odd values
through pydicom's converters): converting through ``Dataset.get`` costs more than reading the
file. Where the pixel bytes lie is kept too (:class:`PixelLocation`), so that ``load`` can read just
those bytes instead of parsing every header a second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.charset import TEXT_VR_DELIMS, decode_bytes
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.values import convert_value

PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # PixelData, FloatPixelData, DoubleFloatPixelData
UNDEFINED_LENGTH = 0xFFFFFFFF
DEFLATED = "1.2.840.10008.1.2.1.99"
SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"
PROJECTION_MODALITIES = {"CR", "DX", "MG", "US", "XA", "RF", "IO", "PX", "OT", "XC", "ES", "GM", "SM",
                         "OP", "DG", "BMD", "IVUS", "OCT"}
NON_IMAGE_MODALITIES = {"RTDOSE", "RTPLAN", "RTRECORD", "SR", "KO", "PR", "REG", "RWV", "DOC", "ECG",
                        "HD", "AU", "FID", "PLAN"}

# What scan keeps of a header, by kind of value.
_FLOATS = ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "ImagerPixelSpacing")
_FLOAT = ("SliceThickness", "SpacingBetweenSlices", "RescaleSlope", "RescaleIntercept")
_INTS = ("Rows", "Columns", "NumberOfFrames", "InstanceNumber", "BitsAllocated", "BitsStored", "HighBit",
         "PixelRepresentation", "SamplesPerPixel", "PlanarConfiguration")
_TEXTS = ("SOPClassUID", "Modality", "PatientID", "PatientName", "StudyInstanceUID", "SeriesInstanceUID",
          "SOPInstanceUID", "FrameOfReferenceUID", "BurnedInAnnotation", "PhotometricInterpretation", "RescaleType")
SUMMARY_KEYWORDS = (*_TEXTS, *_INTS, *_FLOATS, *_FLOAT)
_KIND = {**{k: "floats" for k in _FLOATS}, **{k: "float" for k in _FLOAT}, **{k: "int" for k in _INTS},
         **{k: "text" for k in _TEXTS}}
_TAG = {k: tag_for_keyword(k) for k in SUMMARY_KEYWORDS}
MODALITY_LUT_TAG = tag_for_keyword("ModalityLUTSequence")
PER_FRAME_TAG = tag_for_keyword("PerFrameFunctionalGroupsSequence")


@dataclass(slots=True)
class PixelLocation:
    """Where a file's pixel element lies, and the file it was found in (so a changed file is noticed)."""

    tag: int
    vr: str
    offset: int
    length: int  # UNDEFINED_LENGTH for encapsulated (compressed) data
    file_size: int
    mtime_ns: int


@dataclass
class Header:
    path: Path
    info: dict[str, Any]  # SUMMARY_KEYWORDS values as plain Python (str / int / float / float lists)
    idents: set[str]
    kind: str = ""  # slice | multiframe | single | seg | rtstruct
    error: tuple[str, str] | None = None  # (error_class, reason) when the file cannot be used
    ref_series: set[str] = field(default_factory=set)  # SEG/RTSTRUCT: what they annotate
    ref_sops: set[str] = field(default_factory=set)
    ref_fors: set[str] = field(default_factory=set)
    transfer_syntax: str = ""
    pixels: PixelLocation | None = None  # None: load must read the whole file
    modality_lut: bool = False  # a ModalityLUTSequence (not slope/intercept) maps stored values

    def get(self, keyword: str, default: Any = None) -> Any:
        value = self.info.get(keyword)
        return default if value is None else value

    def __contains__(self, keyword: str) -> bool:
        return self.info.get(keyword) is not None


_INT_VRS = {"US": (2, False), "SS": (2, True), "UL": (4, False), "SL": (4, True)}
_TEXT_VRS = {"DS", "IS", "CS", "UI", "AS", "DA", "TM", "DT"}  # ASCII by definition
_CHARSET_VRS = {"LO", "SH", "PN"}


def _raw_value(vr: str, raw: bytes, little: bool, encodings: list[str]) -> Any:
    """A value straight from its bytes for the few VRs of the summary (numbers, codes, UIDs, short
    text); pydicom's converters validate every value into objects, which costs more than the read."""
    if vr in _INT_VRS:
        size, signed = _INT_VRS[vr]
        order = "little" if little else "big"
        values = [int.from_bytes(raw[i:i + size], order, signed=signed) for i in range(0, len(raw) - size + 1, size)]
        return values[0] if len(values) == 1 else values
    text = decode_bytes(raw, encodings, TEXT_VR_DELIMS) if vr in _CHARSET_VRS else raw.decode("latin-1")
    parts = [p.strip(" \x00") for p in text.split("\\")]
    if vr == "DS":
        values = [float(p) for p in parts]
    elif vr == "IS":
        values = [int(p) for p in parts]
    else:
        values = parts
    return values[0] if len(values) == 1 else values


def element_value(ds: Dataset, tag: int, encodings: list[str] | None = None) -> Any:
    """The value of one element, converted from the raw bytes (None when absent)."""
    elem = ds._dict.get(tag)  # noqa: SLF001 -- raw access: no conversion of anything else
    if elem is None:
        return None
    if hasattr(elem, "keyword"):  # already a DataElement
        return elem.value
    vr = elem.VR
    if vr is None or vr == "UN":
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return None
    if elem.value is None:  # an empty element (or one deferred: never a summary value)
        return None
    if encodings is None:
        encodings = ds._character_set  # noqa: SLF001
    if elem.VR == vr and (vr in _INT_VRS or vr in _TEXT_VRS or vr in _CHARSET_VRS and len(encodings) == 1):
        try:
            return _raw_value(vr, elem.value, _little_endian(ds), encodings)
        except (ValueError, UnicodeDecodeError):
            pass  # an odd value: pydicom's converter decides
    return convert_value(vr, elem, encodings)


def _little_endian(ds: Dataset) -> bool:
    little = getattr(ds, "original_encoding", (None, True))[1]
    return little is not False


def _plain(kind: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    try:
        if kind == "floats":
            values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
            return [float(v) for v in values]
        if kind == "float":
            return float(value)
        if kind == "int":
            return int(value)
    except (TypeError, ValueError):
        return None
    return str(value)


def summary(ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    encodings = ds._character_set  # noqa: SLF001
    for kw in SUMMARY_KEYWORDS:
        try:
            value = _plain(_KIND[kw], element_value(ds, _TAG[kw], encodings))
        except Exception:  # noqa: BLE001 -- a damaged value is treated as absent
            value = None
        if value is not None:
            out[kw] = value
    return out


def transfer_syntax(ds: Dataset) -> str:
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts:
        return str(ts)
    # no file meta (old files): the encoding pydicom detected while reading is the transfer syntax
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit in (None, True):
        return "1.2.840.10008.1.2"
    return "1.2.840.10008.1.2.1" if little in (None, True) else "1.2.840.10008.1.2.2"


def functional_group_item(ds: Dataset, frame_group: Dataset | None, seq: str) -> Dataset | None:
    """An item of a functional-group sequence of an enhanced object: per-frame first, then shared."""
    for group in (frame_group, (ds.get("SharedFunctionalGroupsSequence") or [None])[0]):
        if group is not None and group.get(seq):
            return group.get(seq)[0]
    return None


def looks_like_dicom(ds: Dataset) -> bool:
    """A SOP class, or image rows and pixel data (old files without file meta)."""
    return bool(element_value(ds, _TAG["SOPClassUID"])
                or (element_value(ds, _TAG["Rows"]) and any(t in ds._dict for t in PIXEL_TAGS)))  # noqa: SLF001


def pixel_location(ds: Dataset, path: Path, size: int, mtime_ns: int) -> PixelLocation | None:
    tag = next((t for t in PIXEL_TAGS if t in ds), None)
    if tag is None or transfer_syntax(ds) == DEFLATED:  # deflated: offsets are in the inflated stream
        return None
    raw = ds._dict[tag]  # noqa: SLF001 -- the raw element tells length/offset without reading it
    length, offset = getattr(raw, "length", None), getattr(raw, "value_tell", None)
    if length is None or offset is None:
        return None
    return PixelLocation(tag, str(raw.VR or ("OW" if tag == 0x7FE00010 else "OF")), int(offset), int(length),
                         size, mtime_ns)
