"""What a DICOM header may give the pipeline's metadata: an allow-list.

* ``ALLOWED``: acquisition and geometry values copied into ``ReadItem.meta``. It is an allow-list:
  anything not named here never leaves the reader. Decisions worth knowing:
  - Manufacturer, model name, station name, device serial number and software versions are NOT
    allowed: together they pin down one scanner and so one institution (a quasi-identifier).
  - Patient sex, age, weight and size are NOT allowed (demographic quasi-identifiers), nor are any
    dates/times, descriptions (free text that often holds names), or private tags.
  - Free-text-like values that are allowed (body part, sequence name, view position) must also pass
    a strict character check (letters, digits and a few symbols, at most 64 characters).

The other side of the question -- which values identify someone and must be scrubbed wherever they
appear -- is :mod:`.identifiers`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID

# keyword -> kind of value ("num", "nums", "code", "int")
ALLOWED: dict[str, str] = {
    "Modality": "code",
    "BodyPartExamined": "code",
    "PixelSpacing": "nums",
    "ImagerPixelSpacing": "nums",
    "SliceThickness": "num",
    "SpacingBetweenSlices": "num",
    "KVP": "num",
    "Exposure": "num",
    "ExposureTime": "num",
    "XRayTubeCurrent": "num",
    "EchoTime": "num",
    "RepetitionTime": "num",
    "InversionTime": "num",
    "FlipAngle": "num",
    "MagneticFieldStrength": "num",
    "SequenceName": "code",
    "PulseSequenceName": "code",
    "ScanningSequence": "code",
    "MRAcquisitionType": "code",
    "PhotometricInterpretation": "code",
    "Rows": "int",
    "Columns": "int",
    "NumberOfFrames": "int",
    "BitsStored": "int",
    "SamplesPerPixel": "int",
    "ViewPosition": "code",
    "ImageLaterality": "code",
    "Laterality": "code",
    "PatientPosition": "code",
    "RescaleType": "code",
}

# Sequences of enhanced objects where acquisition values live (walked for ALLOWED keywords only).
_NESTED_FOR_META = (
    "SharedFunctionalGroupsSequence",
    "MRTimingAndRelatedParametersSequence",
    "MREchoSequence",
    "MRModifierSequence",
    "CTAcquisitionDetailsSequence",
    "CTXRayDetailsSequence",
    "CTExposureSequence",
    "PixelMeasuresSequence",
    "FrameAnatomySequence",
    "PixelValueTransformationSequence",
)

_SAFE_CODE = re.compile(r"^[A-Za-z0-9_ .\-*+/\\()]{1,64}$")

def _clean_num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _clean(kind: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if kind == "num":
        return _clean_num(value)
    if kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    if kind == "nums":
        vals = [_clean_num(v) for v in (value if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") and not isinstance(value, str) else [value])]
        return vals if vals and all(v is not None for v in vals) else None
    if kind == "code":
        if not isinstance(value, str) and hasattr(value, "__iter__"):
            parts = [str(v) for v in value]
            text = "\\".join(parts)
        else:
            text = str(value)
        text = text.strip()
        return text if _SAFE_CODE.match(text) else None
    return None


def _find(ds: Dataset, keyword: str, depth: int = 0) -> Any:
    """The value of an allowed keyword at top level, else in the enhanced-object groups."""
    if keyword in ds:
        return ds.get(keyword)
    if depth > 3:
        return None
    for seq_kw in _NESTED_FOR_META:
        seq = ds.get(seq_kw)
        if seq:
            found = _find(seq[0], keyword, depth + 1)
            if found is not None:
                return found
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") if depth == 0 else None
    if per_frame:
        return _find(per_frame[0], keyword, depth + 1)
    return None


def allowed_meta(ds: Dataset) -> dict[str, Any]:
    """Allow-listed acquisition metadata of one header, JSON-safe; transfer syntax added by UID+name."""
    out: dict[str, Any] = {}
    for keyword, kind in ALLOWED.items():
        value = _clean(kind, _find(ds, keyword))
        if value is not None:
            out[keyword] = value
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts:
        out["TransferSyntaxUID"] = str(ts)
        out["TransferSyntax"] = UID(ts).name
    return out
