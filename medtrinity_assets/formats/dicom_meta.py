"""What a DICOM header may and may not give the pipeline.

Two lists live here, because both are about the same question -- which header values are safe:

* ``ALLOWED``: acquisition and geometry values copied into ``ReadItem.meta``. It is an allow-list:
  anything not named here never leaves the reader. Decisions worth knowing:
  - Manufacturer, model name, station name, device serial number and software versions are NOT
    allowed: together they pin down one scanner and so one institution (a quasi-identifier).
  - Patient sex, age, weight and size are NOT allowed (demographic quasi-identifiers), nor are any
    dates/times, descriptions (free text that often holds names), or private tags.
  - Free-text-like values that are allowed (body part, sequence name, view position) must also pass
    a strict character check (letters, digits and a few symbols, at most 64 characters).
* ``identifier_values``: every raw identifying value in a header (names, IDs, dates, UIDs,
  address, institution, physicians, accession, private strings). The reader hands them to the
  caller so that paths can be scrubbed and outputs can be scanned for leaks.
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

# Keywords whose value identifies a person, a visit or a place (collected, never copied).
IDENTIFIER_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthName", "PatientMotherBirthName",
    "OtherPatientIDs", "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers",
    "IssuerOfPatientID", "MilitaryRank", "BranchOfService", "MedicalRecordLocator",
    "AccessionNumber", "StudyID", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "ReferringPhysicianName", "ReferringPhysicianAddress",
    "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord",
    "RequestingPhysician", "OperatorsName", "ResponsiblePerson", "ResponsibleOrganization",
    "StationName", "DeviceSerialNumber", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
    "FrameOfReferenceUID", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
    "AcquisitionDateTime", "InstanceCreationDate", "StructureSetDate", "StructureSetLabel",
    "StructureSetName", "ContentCreatorName", "RequestedProcedureID", "PerformedProcedureStepID",
    "ScheduledProcedureStepID", "AdmissionID", "PatientComments", "ImageComments",
)
_IDENTIFYING_VRS = {"PN", "DA", "DT"}
_PRIVATE_TEXT_VRS = {"LO", "SH", "PN", "ST", "LT", "UT", "DA", "DT", "UC", "UN"}
# Big sequences that hold no identifiers (or too many items to walk at scan time).
_SKIP_SEQUENCES = {"PerFrameFunctionalGroupsSequence", "ContourSequence", "ROIContourSequence",
                   "RTROIObservationsSequence"}


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


def _texts(value: Any) -> list[str]:
    """The text forms of an element value (one per value of a multi-valued element)."""
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray)):
        return [bytes(value).decode("latin-1", errors="replace").strip("\x00 ")]
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]


def _identifier_tags() -> frozenset[int]:
    from pydicom.datadict import tag_for_keyword

    return frozenset(t for t in (tag_for_keyword(k) for k in IDENTIFIER_KEYWORDS) if t is not None)


_ID_TAGS = _identifier_tags()


def identifier_values(ds: Dataset, _depth: int = 0) -> set[str]:
    """Every identifying value in ``ds`` (and its non-bulk sequences): keywords above, any PN/DA/DT,
    and the text of every private element (private creators excepted).

    Works on the raw elements and converts only the ones it keeps: converting every element of a
    header costs more than reading the file."""
    from pydicom.datadict import dictionary_VR
    from pydicom.tag import Tag

    found: set[str] = set()
    for tag, raw in list(ds._dict.items()):  # noqa: SLF001 -- raw access avoids converting every element
        if tag >> 16 == 0x7FE0:  # pixel data: never read here (it may be deferred)
            continue
        try:
            vr = raw.VR
            if vr is None or vr in ("UN",) and not Tag(tag).is_private:
                try:
                    vr = dictionary_VR(tag)
                except KeyError:
                    vr = "UN"
            t = Tag(tag)
            if vr == "SQ":
                elem = ds[tag]
                if elem.keyword in _SKIP_SEQUENCES or _depth > 6:
                    continue
                for item in elem.value or []:
                    found |= identifier_values(item, _depth + 1)
                continue
            if t.is_private:
                if t.is_private_creator or vr not in _PRIVATE_TEXT_VRS:
                    continue
            elif tag not in _ID_TAGS and vr not in _IDENTIFYING_VRS:
                continue
            for text in _texts(ds[tag].value):
                text = text.strip().strip("\x00").strip()
                if text:
                    found.add(text)
        except Exception:  # a damaged element never stops identifier collection
            continue
    return found
