"""Dataset-level measures of description quality: is the text informative, varied, true to its facts?

Pure functions over plain rows (``description``, ``clauses_json``, ROI records), shared by the
description benchmark (``benchmarks/bench_descriptions.py``) and the tests:

- pipeline phrases: words about how the dataset was made ("marked", "retrieved", "metadata" ...);
- the most frequent sentence's share of descriptions, and distinct-n (lexical variety);
- fact coverage: the share of a triplet's facts (modality, region, each finding's side, organ, size,
  intensity, attenuation, texture, shape, margin) that its description expresses;
- stated sizes (long x short axis in mm) for comparison with a known truth;
- knowledge use: a clause drawn from a passage that interprets this finding's measurements (hedged,
  naming a measured feature) instead of copying the passage.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from medtrinity_assets import vocabulary as V
from medtrinity_assets.roi.facts import RoiFacts

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])[\"'\u201d)]?\s+(?=[A-Z0-9\"(])")
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_SPLIT.split(" ".join((text or "").split())) if s.strip()]


def pipeline_phrases(text: str) -> list[str]:
    """Every phrase in ``text`` that talks about the pipeline instead of the image."""
    return [m.group(0) for m in V.PIPELINE_RE.finditer(text or "")]


def most_frequent_sentence(descriptions: Sequence[str]) -> tuple[str, float]:
    """The sentence found in the most descriptions, and the share of descriptions holding it."""
    counts: Counter[str] = Counter()
    for d in descriptions:
        counts.update(set(sentences(d)))
    if not counts or not descriptions:
        return "", 0.0
    sentence, n = counts.most_common(1)[0]
    return sentence, n / len(descriptions)


def distinct_n(descriptions: Iterable[str], n: int = 2) -> float:
    """Distinct word n-grams / all word n-grams over the descriptions (1.0 = no n-gram repeats)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for d in descriptions:
        words = _WORD.findall((d or "").lower())
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


# ---- fact coverage -------------------------------------------------------------------------------

_MARGIN_WORDS = {"well_defined": ("well-defined", "well defined", "sharp", "sharply", "circumscribed"),
                 "ill_defined": ("ill-defined", "ill defined", "indistinct", "blurred", "poorly defined")}
_INTENSITY_WORDS = {
    "hyper": ("hyperdense", "hyperintense", "hyperechoic", "hyperattenuating", "brighter", "higher attenuation",
              "radiopaque", "denser", "higher signal", "more echogenic"),
    "hypo": ("hypodense", "hypointense", "hypoechoic", "hypoattenuating", "darker", "lower attenuation",
             "radiolucent", "lower signal", "less echogenic"),
    "iso": ("isodense", "isointense", "isoechoic", "isoattenuating", "similar", "same attenuation", "indistinguishable"),
}


def _has(text: str, words: Iterable[str]) -> bool:
    return any(re.search(rf"(?<![a-z]){re.escape(w)}(?![a-z])", text) for w in words)


def _intensity_prefix(intensity: str) -> str:
    i = (intensity or "").lower()
    for p in ("hyper", "hypo", "iso"):
        if i.startswith(p):
            return p
    return {"brighter": "hyper", "darker": "hypo", "similar": "iso", "radiopaque": "hyper",
            "radiolucent": "hypo"}.get(i, "")


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"(?<![\w.])(\d+(?:\.\d+)?)(?=\s*(?:mm|×|x\s*\d|by\s*\d))", text)]


def roi_facts_expressed(text: str, roi: RoiFacts) -> dict[str, bool]:
    """For each fact this finding has, whether ``text`` expresses it."""
    low = text.lower()
    out: dict[str, bool] = {}
    if roi.side in ("left", "right"):
        out["side"] = _has(low, (roi.side,))
    elif roi.side == "midline":
        out["side"] = _has(low, ("midline", "central"))
    if roi.region and roi.region != "body":
        region = V.humanise(roi.region).lower()
        out["region"] = _has(low, (region,)) or bool(V.organs_in(region) & V.organs_in(low))
    long_mm = getattr(roi, "long_axis_mm", None)
    if long_mm:
        out["size"] = any(abs(x - long_mm) <= max(1.0, 0.06 * long_mm) for x in _numbers(low))
    elif roi.size_class:
        out["size"] = _has(low, (V.SIZE_WORDS.get(roi.size_class, roi.size_class), V.humanise(roi.size_class))) or "%" in low
    prefix = _intensity_prefix(roi.intensity)
    if prefix:
        out["intensity"] = _has(low, _INTENSITY_WORDS[prefix]) or _has(low, (roi.intensity.lower(),))
    attenuation = getattr(roi, "attenuation", "")
    if attenuation:
        out["attenuation"] = _has(low, (attenuation.replace("_", " "), attenuation.replace("_", "-")))
    if roi.texture:
        out["texture"] = _has(low, (roi.texture,))
    if roi.shape:
        out["shape"] = _has(low, (roi.shape,))
    if roi.margin in _MARGIN_WORDS:
        out["margin"] = _has(low, _MARGIN_WORDS[roi.margin])
    return out


def image_facts_expressed(text: str, modality: str, region: str) -> dict[str, bool]:
    low = text.lower()
    out: dict[str, bool] = {}
    m = V.modality(modality)
    if m is not None:
        out["modality"] = m.code in V.modalities_in(low) or _has(low, (m.name.lower(), m.short.lower()))
    if region:
        words = V.humanise(region).lower()
        out["region"] = _has(low, (words,)) or bool(V.organs_of_phrase(words) & V.organs_in(low))
    return out


@dataclass
class Coverage:
    expressed: int = 0
    total: int = 0
    by_fact: Counter | None = None
    missed: Counter | None = None

    def add(self, facts: Mapping[str, bool]) -> None:
        self.by_fact = self.by_fact if self.by_fact is not None else Counter()
        self.missed = self.missed if self.missed is not None else Counter()
        for name, ok in facts.items():
            self.total += 1
            self.by_fact[name] += 1
            if ok:
                self.expressed += 1
            else:
                self.missed[name] += 1

    @property
    def share(self) -> float:
        return self.expressed / self.total if self.total else 0.0


# ---- sizes ---------------------------------------------------------------------------------------

_AXES = re.compile(r"(\d+(?:\.\d+)?)\s*(?:×|x|by)\s*(\d+(?:\.\d+)?)\s*mm")
_ONE = re.compile(r"(\d+(?:\.\d+)?)\s*mm\b")


def stated_size_mm(text: str) -> tuple[float, float] | None:
    """(long, short) axis in mm of the first size ``text`` states ('12 × 9 mm', '12 mm'), or None."""
    m = _AXES.search(text or "")
    if m:
        a, b = float(m.group(1)), float(m.group(2))
        return max(a, b), min(a, b)
    m = _ONE.search(text or "")
    if m:
        return float(m.group(1)), float(m.group(1))
    return None


# ---- knowledge use -------------------------------------------------------------------------------

_HEDGE = re.compile(r"\b(fits?|in keeping with|compatible with|consistent with|suggests?|suggestive|favou?rs?|would|may|"
                    r"could|likely|typical of|raise[sd]? the possibility|point(?:s)? to|differential|considerations?)\b",
                    re.IGNORECASE)


def _feature_words(roi: RoiFacts) -> list[str]:
    words = [roi.texture, roi.shape, V.humanise(getattr(roi, "attenuation", "") or "")]
    words += list(_MARGIN_WORDS.get(roi.margin, ()))
    words += list(_INTENSITY_WORDS.get(_intensity_prefix(roi.intensity), ()))
    if roi.intensity:
        words.append(roi.intensity)
    return [w.lower() for w in words if w]


def _words(text: str) -> list[str]:
    return _WORD.findall((text or "").lower())


def _copies_passage(text: str, passage_texts: Iterable[str], n: int = 8) -> bool:
    """True when ``text`` repeats ``n`` consecutive words of a passage (a copied sentence, not a paraphrase)."""
    words = _words(text)
    grams = {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}
    if not grams:
        return False
    for p in passage_texts:
        pw = _words(p)
        if any(tuple(pw[i:i + n]) in grams for i in range(len(pw) - n + 1)):
            return True
    return False


def is_interpretive(text: str, roi: RoiFacts, passage_texts: Iterable[str] = ()) -> bool:
    """A hedged clause that names a measured feature of ``roi`` and does not copy a passage sentence."""
    low = text.lower()
    return bool(_HEDGE.search(low)) and _has(low, _feature_words(roi)) and not _copies_passage(text, passage_texts)


def knowledge_clauses(clauses: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
    return [c for c in clauses if str(c.get("source") or "").startswith(("passage:", "knowledge:"))]
