"""One retrieval query per image, in words the corpus uses: modality, organ, disease/labels, ROI facts.

The patient side and the size of a lesion are left out on purpose: they do not change which
knowledge applies, and leaving them out lets samples with the same finding share one query (and
one embedding) per shard.
"""

from __future__ import annotations

from typing import Any, Iterable

MODALITY_WORDS = {
    "CT": "CT",
    "MR": "MRI",
    "CR": "radiograph X-ray",
    "DX": "radiograph X-ray",
    "US": "ultrasound",
    "MG": "mammogram",
    "XA": "angiography",
    "PT": "PET",
    "NM": "nuclear medicine scan",
    "FUNDUS": "fundus photograph of the retina",
    "OCT": "optical coherence tomography of the retina",
    "HISTO": "histology tissue section",
    "HISTOLOGY": "histology tissue section",
    "HISTOPATHOLOGY": "histology tissue section",
    "SM": "histology tissue section",  # DICOM slide microscopy
    "OP": "fundus photograph of the retina",  # DICOM ophthalmic photography
    "DERM": "dermoscopy of a skin lesion",
    "DERMOSCOPY": "dermoscopy of a skin lesion",
    "XR": "radiograph X-ray",
    "MRI": "MRI",
}
# ROI labels that name anatomy rather than a finding (used when the ROI table has no 'kind' column)
ANATOMY_WORDS = {"liver", "spleen", "kidney", "lung", "bone", "brain", "heart", "pancreas", "body", "vertebra",
                 "aorta", "stomach", "bladder", "background"}
FACT_COLUMNS = ("intensity", "texture", "margin", "shape")


def _clean(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).strip().replace("_", " ")
    return "" if text.lower() in {"", "unknown", "none", "nan", "null"} else text


def modality_words(code: Any) -> str:
    code = _clean(code)
    return MODALITY_WORDS.get(code.upper(), code)


def finding_rois(rois: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """ROI rows that describe findings (not anatomy, not error rows), one per distinct label, stable order."""
    seen: set[str] = set()
    out = []
    for roi in rois:
        if roi.get("status") not in (None, "", "ok"):
            continue
        label = _clean(roi.get("label"))
        kind = roi.get("kind")
        is_anatomy = kind == "anatomy" if kind else label.lower() in ANATOMY_WORDS
        if not label or is_anatomy or label.lower() in seen:
            continue
        seen.add(label.lower())
        out.append(roi)
    return sorted(out, key=lambda r: _clean(r.get("label")).lower())


def roi_phrase(roi: dict[str, Any]) -> str:
    """'liver cyst, hypodense homogeneous well defined round, in the liver'."""
    facts = " ".join(f for f in (_clean(roi.get(c)) for c in FACT_COLUMNS) if f)
    region = _clean(roi.get("region"))
    phrase = _clean(roi.get("label"))
    if facts:
        phrase += f", {facts}"
    if region and region.lower() not in phrase.lower():
        phrase += f", in the {region}"
    return phrase


def build_query(image: dict[str, Any], rois: Iterable[dict[str, Any]] = ()) -> str:
    """The query text of one image row (IMAGE_SCHEMA dict) and its ROI rows (ROI_SCHEMA dicts, may be empty)."""
    head = " ".join(p for p in (modality_words(image.get("modality")), _clean(image.get("organ"))) if p)
    found = finding_rois(rois)[:3]
    taken = {head.lower(), *(_clean(r.get("label")).lower() for r in found)}
    terms: list[str] = []
    for value in [image.get("disease"), *(image.get("labels") or [])]:
        text = _clean(value)
        if text and text.lower() not in taken:
            taken.add(text.lower())
            terms.append(text)
    findings = [roi_phrase(r) for r in found]
    if not terms and not findings:
        return f"normal {head} without abnormality".strip() if head else "normal medical image"
    body = "; ".join([*terms, *findings])
    # the finding first: it carries the meaning; modality and organ narrow it down
    return f"{body} on {head}" if head else body
