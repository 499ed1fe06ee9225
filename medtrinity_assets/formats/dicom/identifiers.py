"""The identifying values of a DICOM header, and the scrubbing of paths with them.

Identifiers are collected, never copied: every raw identifying value in a header (names, IDs,
dates, UIDs, address, institution, physicians, accession, private strings) goes to the caller so
that paths and reasons can be scrubbed and outputs scanned for leaks. Which values are *allowed*
into metadata is the other list, in :mod:`.meta`.

Collection runs on every file at scan time, so it works on pydicom's raw elements: text is decoded
with pydicom's character-set codecs straight from the raw bytes, and only what is kept is decoded.
This is the hook for de-identification of paths: :func:`path_scrubber` replaces every form of every
identifier found in a source's headers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from pydicom.charset import TEXT_VR_DELIMS, decode_bytes
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from medtrinity_assets import deid

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

_ID_TAGS = frozenset(t for t in (tag_for_keyword(k) for k in IDENTIFIER_KEYWORDS) if t is not None)
_SKIP_SEQUENCE_TAGS = frozenset(tag_for_keyword(k) for k in _SKIP_SEQUENCES)
# VRs whose raw bytes are decoded here (the rest, e.g. a private element of unknown VR, through pydicom)
_CHARSET_VRS = {"PN", "LO", "SH", "ST", "LT", "UT", "UC"}  # decoded with the dataset's character set
_ASCII_VRS = {"DA", "DT", "TM", "UI", "CS", "AS", "AE", "DS", "IS", "UR"}
_SINGLE_VALUED = {"LT", "ST", "UT", "UR"}  # a backslash is text, not a value separator


def _texts(value: Any) -> list[str]:
    """The text forms of a converted element value (one per value of a multi-valued element)."""
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray)):
        return [bytes(value).decode("latin-1", errors="replace").strip("\x00 ")]
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]


def _raw_texts(raw: bytes, vr: str, encodings: list[str]) -> list[str]:
    """The text values of a raw text element, decoded as pydicom would."""
    if vr in _CHARSET_VRS:
        text = decode_bytes(raw, encodings, TEXT_VR_DELIMS)
    else:
        text = raw.decode("latin-1", errors="replace")
    return [text] if vr in _SINGLE_VALUED else text.split("\\")


def identifier_values(ds: Dataset, _depth: int = 0) -> set[str]:
    """Every identifying value in ``ds`` (and its non-bulk sequences): the keywords above, any
    PN/DA/DT, and the text of every private element (private creators excepted)."""
    found: set[str] = set()
    encodings = None
    for tag, raw in list(ds._dict.items()):  # noqa: SLF001 -- raw access avoids converting every element
        group, element = tag >> 16, tag & 0xFFFF
        if group == 0x7FE0:  # pixel data: never read here (it may be deferred)
            continue
        try:
            private = group & 1 == 1
            explicit_vr = raw.VR
            vr = explicit_vr
            if vr is None or vr == "UN" and not private:
                try:
                    vr = dictionary_VR(tag)
                except KeyError:
                    vr = "UN"
            if vr == "SQ":
                if tag in _SKIP_SEQUENCE_TAGS or _depth > 6:
                    continue
                for item in ds[tag].value or []:
                    found |= identifier_values(item, _depth + 1)
                continue
            if private:
                if 0x0010 <= element <= 0x00FF or vr not in _PRIVATE_TEXT_VRS:  # a private creator
                    continue
            elif tag not in _ID_TAGS and vr not in _IDENTIFYING_VRS:
                continue
            value = getattr(raw, "value", None)
            fast = (not hasattr(raw, "keyword") and isinstance(value, bytes) and explicit_vr == vr
                    and vr in _CHARSET_VRS | _ASCII_VRS)
            if fast and encodings is None:
                encodings = ds._character_set  # noqa: SLF001
            if fast and len(encodings) == 1:  # one character set: no ISO 2022 escapes to follow
                texts = _raw_texts(value, vr, encodings)
            else:  # converted already, deferred, or of a VR known only from the dictionary: pydicom's way
                texts = _texts(ds[tag].value)
            for text in texts:
                text = text.strip().strip("\x00").strip()
                if text:
                    found.add(text)
        except Exception:  # noqa: BLE001 -- a damaged element never stops identifier collection
            continue
    return found


def path_scrubber(identifiers: Iterable[str]) -> Callable[[str], str]:
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


def subject_of(values: Any) -> str:
    """The subject an item belongs to (decides its shard): patient id, else name, else a UID."""
    for kw in ("PatientID", "PatientName", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        v = str(values.get(kw) or "").strip()
        if v:
            return v
    return ""
