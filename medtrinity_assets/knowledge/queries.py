"""Retrieval queries of one image, in words the corpus uses, and what a passage must match to answer one.

A query is built per finding: its label, the organ it lies in, the modality, and the measured
appearance (intensity, CT attenuation class, texture, margin, shape); an image without finding ROIs
is queried from the source's own labels, disease and caption. Only an image none of whose facts
names a finding is queried as a normal study ("normal CT of the abdomen").

The patient side and the size of a lesion are left out on purpose: they do not change which
knowledge applies, and leaving them out lets samples with the same finding share one query (and one
embedding) per shard.

Each query also carries what a passage must match to be used for it (:meth:`Query.accepts`): the
organ (or its body region), the modality, and -- for a named finding -- the finding itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from medtrinity_assets import vocabulary as V

FACT_COLUMNS = ("intensity", "attenuation", "texture", "margin", "shape")
NORMAL_PREFIX = "normal "  # queries of images without a finding start with it
MAX_FINDINGS = 3  # queries per image; with top_k 5 each finding still gets at least one passage
CAPTION_WORDS = 30  # words of a source caption a query keeps
GENERIC_PASSAGE_ORGANS = frozenset({"", "none", "tissue", "connective tissue"})  # entries about no one organ


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


def _organ_of(*phrases: str) -> str:
    """The organ the first phrase naming one names ('left kidney cyst' -> kidney); an organ wins over the body
    region the same phrase names ('upper abdomen ... spleen lesion' -> spleen), else ''."""
    for p in phrases:
        found = [o for o, _ in V.organ_mentions(V.humanise(p))]
        if found:
            return next((o for o in found if o not in V.REGIONS), found[0])
    return ""


@dataclass(frozen=True)
class Query:
    """One retrieval query and the constraints a passage must meet to answer it."""

    text: str
    organ: str = ""  # canonical organ or body region the finding is in; '' unknown (no organ constraint)
    modality: str = ""  # modality class; '' unknown (no modality constraint)
    topic: frozenset[str] = frozenset()  # the finding's topic words; empty for a generic 'lesion'
    focal: bool = False  # a focal finding ('lesion', 'nodule' ...): a diffuse-disease passage does not answer it
    finding: bool = True  # False: an image none of whose facts names a finding

    def accepts(self, title: str, text: str, meta: Mapping[str, Any] | None) -> bool:
        """Does a passage (its title, text and core-corpus facts) match this query's organ, modality and finding?"""
        meta = meta or {}
        if self.finding and meta.get("normal"):
            return False  # a finding is never explained by a normal-study passage
        if not self.finding and meta and not meta.get("normal"):
            return False  # and a normal study not by a disease passage
        if not self._organ_ok(str(meta.get("organ") or ""), title):
            return False
        mods = {V.modality_class(m) for m in meta.get("modalities") or ()}
        if self.modality and mods and self.modality not in mods:
            return False
        if not self.finding:
            return True
        topics = V.topic_words(" ".join([title, *map(str, meta.get("aliases") or ())]))
        if self.topic:
            return bool(self.topic & topics)
        return not self.focal or bool(topics & V.FOCAL_TOPICS) or V.names_focal_finding(title)

    def _organ_ok(self, passage_organ: str, title: str) -> bool:
        if not self.organ:
            return True
        if passage_organ.lower() in GENERIC_PASSAGE_ORGANS:
            organs = V.organs_in(title)  # a corpus without organ facts: the organs its title names, if any
            if not organs:
                return True
        else:
            organs = V.organs_in(passage_organ) or frozenset({passage_organ})
        wanted = {V.organ_family(self.organ), self.organ} | set(V.organs_of_region(self.organ))
        for o in organs:
            if o in wanted or V.organ_family(o) in wanted:
                return True
            if o in V.REGIONS and self.organ in V.organs_of_region(o):  # a chest passage for a lung finding
                return True
        return False


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


def appearance_words(roi: Mapping[str, Any]) -> str:
    """'hypodense fluid attenuation homogeneous well defined round' from a ROI row's measured facts."""
    words = []
    for c in FACT_COLUMNS:
        v = _clean(roi.get(c))
        if v:
            words.append(f"{v} attenuation" if c == "attenuation" else v)
    return " ".join(words)


def roi_phrase(roi: dict[str, Any]) -> str:
    """'liver cyst, hypodense fluid attenuation homogeneous well defined round, in the liver'."""
    facts = appearance_words(roi)
    region = _clean(roi.get("region"))
    phrase = _clean(roi.get("label"))
    if facts:
        phrase += f", {facts}"
    if region and region.lower() != "body" and region.lower() not in phrase.lower():
        phrase += f", in the {region}"
    return phrase


def _names_finding(text: str) -> bool:
    low = V.humanise(text).lower()
    return bool(low) and low not in V.NON_FINDING_LABELS and not low.startswith("normal")


def _caption_words(caption: str) -> str:
    words = (caption or "").split()
    return " ".join(words[:CAPTION_WORDS]).rstrip(".,;")


def build_queries(image: dict[str, Any], rois: Iterable[dict[str, Any]] = ()) -> list[Query]:
    """Queries of an image row (IMAGE_SCHEMA dict) with its ROI rows (ROI_SCHEMA dicts), one per finding.

    A finding is an ROI finding (with its measured appearance), the disease, or an image label. For a
    slice of a volume that has ROI rows, labels not seen among its ROIs are dropped: volume labels name
    every lesion of the volume, the ROIs say which ones this slice shows. A caption shipped with the
    image joins the query of an image without finding ROIs. An image whose labels, disease and caption
    name no finding gets one "normal <modality> <organ>" query.
    """
    rois = list(rois)
    mod_words = modality_words(image.get("modality"))
    mod_class = V.modality_class(image.get("modality"))
    image_organ = _clean(image.get("organ"))
    head = " ".join(p for p in (mod_words, image_organ) if p)
    found = finding_rois(rois)[:MAX_FINDINGS]
    taken = {head.lower(), *(_clean(r.get("label")).lower() for r in found)}
    slice_index = image.get("slice_index")
    slice_with_rois = slice_index is not None and slice_index >= 0 and any(r.get("status") in (None, "", "ok") for r in rois)
    values = [image.get("disease")] + ([] if slice_with_rois else list(image.get("labels") or []))
    caption = "" if found or slice_with_rois else _caption_words(str(image.get("caption_in") or ""))
    queries: list[Query] = []
    for value in values:
        text = _clean(value)
        if text and text.lower() not in taken and _names_finding(text):
            taken.add(text.lower())
            organ = _organ_of(text, image_organ)
            queries.append(Query(f"{text} on {head}" if head else text, organ, mod_class, V.topic_words(text),
                                 V.names_focal_finding(text)))
    for r in found:
        label = _clean(r.get("label"))
        organ = _organ_of(_clean(r.get("region")), label, image_organ)
        phrase = roi_phrase(r)
        queries.append(Query(f"{phrase} on {head}" if head else phrase, organ, mod_class, V.topic_words(label),
                             V.names_focal_finding(label) or not V.topic_words(label)))
    queries = queries[:MAX_FINDINGS]
    if caption:
        terms = _finding_terms(caption)
        if queries:  # the caption says what the image shows: it sharpens the first finding's query
            q = queries[0]
            queries[0] = Query(f"{q.text}; {caption}", q.organ, q.modality, q.topic, q.focal, q.finding)
        elif terms:
            queries.append(Query(f"{caption} on {head}" if head else caption, _organ_of(caption, image_organ),
                                 mod_class, V.topic_words(" ".join(terms)), V.names_focal_finding(" ".join(terms))))
    if not queries:
        others = [_clean(v) for v in values if _clean(v)]  # 'normal fundus': the source's own words for it
        text = f"{NORMAL_PREFIX}{head} without abnormality".strip() if head else f"{NORMAL_PREFIX}medical image"
        if others:
            text += " " + " ".join(others)
        queries.append(Query(text, image_organ and _organ_of(image_organ) or "", mod_class, finding=False))
    return queries


_FINDING_TERM_RE = V.term_pattern(V.FINDING_TERMS)


def _finding_terms(text: str) -> list[str]:
    """Finding words a caption affirms ('a 16 mm spleen lesion' -> ['lesion']; 'without a focal lesion' -> [])."""
    low = text.lower()
    out = []
    for m in _FINDING_TERM_RE.finditer(low):
        clause = re.split(r"[.;:,()]", low[max(0, m.start() - 40):m.start()])[-1]
        if not any(re.search(rf"(?<![a-z]){re.escape(n)}(?![a-z])", clause) for n in V.NEGATIONS):
            out.append(m.group(1))
    return out


def build_query(image: dict[str, Any], rois: Iterable[dict[str, Any]] = ()) -> str:
    """All queries of an image in one line (what the ``context`` table shows as the sample's query)."""
    return " | ".join(q.text for q in build_queries(image, rois))


def passage_meta(meta_json: str | None) -> dict[str, Any]:
    if not meta_json:
        return {}
    try:
        meta = json.loads(meta_json)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}
