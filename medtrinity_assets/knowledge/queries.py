"""One retrieval query per image, in words the corpus uses: modality, organ, disease/labels, ROI facts.

The patient side and the size of a lesion are left out on purpose: they do not change which
knowledge applies, and leaving them out lets samples with the same finding share one query (and
one embedding) per shard.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from medtrinity_assets import vocabulary as V

FACT_COLUMNS = ("intensity", "texture", "margin", "shape")
NORMAL_PREFIX = "normal "  # queries of images without a finding start with it
MAX_FINDINGS = 3  # queries per image; with top_k 5 each finding still gets at least one passage


def _clean(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).strip().replace("_", " ")
    return "" if text.lower() in {"", "unknown", "none", "nan", "null"} else text


def modality_words(code: Any) -> str:
    """How the knowledge corpora name images of this modality ('CR' -> 'radiograph X-ray'); unknown codes as given."""
    code = _clean(code)
    m = V.modality(code)
    return m.query if m else code


def finding_rois(rois: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """ROI rows that describe findings (not anatomy, not error rows), one per distinct label, stable order."""
    seen: set[str] = set()
    out = []
    for roi in rois:
        if roi.get("status") not in (None, "", "ok"):
            continue
        label = _clean(roi.get("label"))
        if not label or roi.get("kind") == "anatomy" or label.lower() in seen:
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


def build_queries(image: dict[str, Any], rois: Iterable[dict[str, Any]] = ()) -> list[str]:
    """One query per finding of an image row (IMAGE_SCHEMA dict) with its ROI rows (ROI_SCHEMA dicts).

    A finding is an ROI finding (with its facts), the disease, or an image label. For a slice of a
    volume that has ROI rows, labels not seen among its ROIs are dropped: volume labels name every
    lesion of the volume, the ROIs say which ones this slice shows. An image without findings gets
    one "normal <modality> <organ>" query.
    """
    rois = list(rois)
    head = " ".join(p for p in (modality_words(image.get("modality")), _clean(image.get("organ"))) if p)
    found = finding_rois(rois)[:MAX_FINDINGS]
    taken = {head.lower(), *(_clean(r.get("label")).lower() for r in found)}
    slice_index = image.get("slice_index")
    slice_with_rois = slice_index is not None and slice_index >= 0 and any(r.get("status") in (None, "", "ok") for r in rois)
    values = [image.get("disease")] + ([] if slice_with_rois else list(image.get("labels") or []))
    terms: list[str] = []
    for value in values:
        text = _clean(value)
        if text and text.lower() not in taken:
            taken.add(text.lower())
            terms.append(text)
    findings = [*terms, *(roi_phrase(r) for r in found)][:MAX_FINDINGS]
    if not findings:
        return [f"{NORMAL_PREFIX}{head} without abnormality".strip() if head else f"{NORMAL_PREFIX}medical image"]
    # the finding first: it carries the meaning; modality and organ narrow it down
    return [f"{f} on {head}" if head else f for f in findings]


def is_finding_query(query: str) -> bool:
    return not query.startswith(NORMAL_PREFIX)


def build_query(image: dict[str, Any], rois: Iterable[dict[str, Any]] = ()) -> str:
    """All queries of an image in one line (what the ``context`` table shows as the sample's query)."""
    return " | ".join(build_queries(image, rois))
