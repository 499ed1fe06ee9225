"""Text–fact consistency: does a description (and its five attributes) say what the facts say?

The original MedTrinity captions sometimes contradict their own metadata (a breast MRI described as a
brain scan) or invent locations. Here the facts are data (image modality and organ, ROI labels, side,
size class, intensity class, containing organ), so a description can be checked against them
mechanically. The scorer reads text only; it never needs the language model that wrote it.

One scorer for every judge: the generators' guard (a language model's answer is rejected, then repaired
once; the grounded composer borrows only knowledge sentences that pass) and the blocking
``triplets_consistency`` check read the same words (:mod:`medtrinity_assets.vocabulary`) and the same
facts (the ROI stage's :class:`~medtrinity_assets.roi.facts.RoiFacts`), so they cannot disagree.

Issue kinds:
- ``modality``: a modality is named that is not the image's;
- ``organ``: an organ of a body region that the image cannot show is named;
- ``absent_organ``: a specific organ is named that no fact mentions;
- ``absent_finding``: an abnormality is claimed (not negated) while the facts hold none;
- ``side``: left/right named against the ROI's side, or when no side is known at all;
- ``size``: a size class that no relevant ROI has;
- ``intensity``: hyper/hypo/iso against the ROI's intensity class;
- ``roi_count``: a count of lesions/regions that matches no count in the facts;
- ``pipeline_language``: words about how the dataset was made ("marked", "region of interest", "retrieved",
  "metadata" ...: ``vocabulary.PIPELINE_TERMS``) -- a training target states what the image shows.

Sentence-level: when a sentence names ROI labels, side/size/intensity are compared with those ROIs only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from medtrinity_assets import vocabulary as V
from medtrinity_assets.roi.facts import RoiFacts
from medtrinity_assets.tables import json_or_value

ISSUE_KINDS = ("modality", "organ", "absent_organ", "absent_finding", "side", "size", "intensity", "roi_count",
               "pipeline_language")
ATTRIBUTE_FIELDS = ("modality", "organ", "roi_location", "texture", "relations")


@dataclass(frozen=True)
class Issue:
    kind: str
    where: str  # "description" or "attributes.<field>"
    found: str  # the word(s) in the text (never an identifier: vocabulary terms only)
    expected: str  # what the facts say

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where, "found": self.found, "expected": self.expected}

    def reason(self) -> str:
        """One line for a person (and for a language model asked to repair its answer)."""
        return f"{self.kind} '{self.found}' where the facts give {self.expected or 'nothing'} ({self.where})"


@dataclass(frozen=True)
class RoiClaims:
    """What one ROI lets a text say, in the scorer's terms (classes, not the table's words)."""

    label: str = ""
    side: str = ""  # left | right | midline | bilateral | '' (unknown)
    size_class: str = ""  # small | medium | large | ''
    intensity: str = ""  # hyper | hypo | iso | ''
    organ: str = ""  # containing/touching organ (canonical) or ''
    related: tuple[str, ...] = ()  # organs and findings its relations name
    is_finding: bool = True

    @classmethod
    def of(cls, roi: RoiFacts) -> RoiClaims:
        organs = [o for o, _ in V.organ_mentions(V.humanise(roi.region))]
        return cls(label=roi.label, side=normalise_side(roi.side), size_class=normalise_size(roi.size_class),
                   intensity=normalise_intensity(roi.intensity), organ=organs[0] if organs else "",
                   related=tuple(t for t in roi.relations.organs() if t), is_finding=roi.is_finding)


@dataclass(frozen=True)
class Facts:
    """The facts one triplet is held to: the image's modality, organ, disease and labels, and its ROIs."""

    modality: str = ""  # code as in the tables (CT, MR, ...)
    organ: str = ""
    disease: str = ""
    labels: tuple[str, ...] = ()
    rois: tuple[RoiFacts, ...] = ()
    body_region: str = ""  # what the slice shows (e.g. 'lower chest'), when the image was examined
    laterality: str = ""  # left | right: the image is of one side (a radiograph of the right hand)

    # ---- derived views (computed once per Facts) ----------------------------------------------------
    @functools.cached_property
    def claims(self) -> tuple[RoiClaims, ...]:
        return tuple(RoiClaims.of(r) for r in self.rois)

    @property
    def modality_class(self) -> str:
        return V.modality_class(self.modality)

    @functools.cached_property
    def _organs(self) -> frozenset[str]:
        out: set[str] = set()
        texts = [self.organ, self.disease, *self.labels, self.body_region]
        for r in self.claims:
            texts += [r.label, r.organ, *r.related]
        for t in texts:
            out |= {o for o, _ in V.organ_mentions(t or "")}
        m = V.modality(self.modality)
        if m and m.implies_organ:
            out.add(m.implies_organ)
        return frozenset(out)

    def organs(self) -> set[str]:
        """Every organ (canonical) that some fact names."""
        return set(self._organs)

    def regions(self) -> set[str]:
        return {V.ORGAN_REGION[o] for o in self._organs if o in V.ORGAN_REGION}

    def abnormal_rois(self) -> list[RoiClaims]:
        return [r for r in self.claims if r.is_finding]

    def has_finding(self) -> bool:
        if self.abnormal_rois():
            return True
        for t in (self.disease, *self.labels):
            if t and _is_finding_label(t) and t.strip().lower() not in V.NON_FINDING_LABELS:
                return True
        return False


def _is_finding_label(label: str) -> bool:
    """A ROI label names a finding when it is not plain anatomy (liver, lung, body ...)."""
    lab = (label or "").strip().lower()
    if not lab or lab in V.NORMAL_LABELS:
        return False
    if _FINDING_RE.search(lab):
        return True
    mentions = V.organ_mentions(lab)
    if mentions:
        # "liver" is anatomy; "liver tumour" was caught above; "left kidney" is anatomy
        return False
    return True  # an unknown label (e.g. "lesion_2", "opacity") is treated as a finding


# ---- text helpers ---------------------------------------------------------------------------

_TERM_CACHE: dict[str, re.Pattern[str]] = {}


def _pattern(term: str) -> re.Pattern[str]:
    pat = _TERM_CACHE.get(term)
    if pat is None:
        pat = re.compile(r"(?<![a-z0-9&])" + re.escape(term) + r"(?![a-z0-9&])")
        _TERM_CACHE[term] = pat
    return pat


def _has_term(text: str, term: str) -> bool:
    return bool(_pattern(term).search(text))


def _find(text: str, term: str) -> list[int]:
    return [m.start() for m in _pattern(term).finditer(text)]


def _negated(text: str, start: int) -> bool:
    """True when a negation word closely precedes position ``start`` in the same clause."""
    window = text[max(0, start - 40):start]
    window = re.split(r"[.;:,()]", window)[-1]
    return any(_has_term(window, neg) for neg in V.NEGATIONS)


_FINDING_RE = V.term_pattern(V.FINDING_TERMS)
_SIZE_RE = V.term_pattern(V.SIZE_CLASS_OF_WORD)


def _sentences(text: str) -> list[str]:
    """Sentences and semicolon clauses: the unit a side/size/intensity word is read against."""
    return [s for s in _SENTENCE_SPLIT.split(text) if s.strip()]


# a sentence ends at . ! ? -- also when a closing quote or bracket follows it ('... left." No ROI')
_SENTENCE_SPLIT = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'\u201d\u2019)\]]))\s+|\n+|;\s*")


_IMAGE_SIDE = re.compile(
    r"(image'?s|viewer'?s|display'?s|screen'?s)\s+(left|right)|(left|right)\s+(side\s+)?of\s+the\s+(image|display|screen|picture)"
)


def _side_mentions(sentence: str) -> list[str]:
    low = _IMAGE_SIDE.sub(" ", sentence.lower())
    out = []
    for side in ("left", "right"):
        if _find(low, side):
            out.append(side)
    if _has_term(low, "bilateral") or _has_term(low, "both sides"):
        out.append("bilateral")
    return out


def _size_mentions(sentence: str) -> list[str]:
    low = sentence.lower()
    for exc in V.SIZE_EXCEPTIONS:
        low = low.replace(exc, " ")
    return sorted({V.SIZE_CLASS_OF_WORD[m.group(1)] for m in _SIZE_RE.finditer(low)})


_INTENSITY = re.compile(r"(?<![a-z])(hyper|hypo|iso)[- ]?(" + "|".join(V.INTENSITY_STEMS) + r")")


def _intensity_mentions(sentence: str) -> list[str]:
    return sorted({m.group(1) for m in _INTENSITY.finditer(sentence.lower())})


_COUNT = re.compile(
    r"(?<![a-z0-9.])(\d+(?![.\d])(?!\s*(?:mm|cm|hu|%|×|x\s*\d|by\s*\d))|"  # '12 mm cyst' is a size, not a count
    + "|".join(sorted(map(re.escape, V.COUNT_WORDS), key=len, reverse=True))
    + r"|multiple|several|numerous)\s+(?:[a-z-]+\s+){0,2}?("
    + "|".join(sorted(map(re.escape, V.COUNT_NOUNS), key=len, reverse=True)) + r")(?![a-z])"
)


def _count_mentions(sentence: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in _COUNT.finditer(sentence.lower())]


def normalise_side(value: Any) -> str:
    v = str(value or "").strip().lower()
    if v in ("left", "l", "patient left"):
        return "left"
    if v in ("right", "r", "patient right"):
        return "right"
    if v in ("midline", "centre", "center", "central", "middle"):
        return "midline"
    if v in ("bilateral", "both"):
        return "bilateral"
    return ""


def normalise_size(value: Any) -> str:
    v = str(value or "").strip().lower().replace("_", " ")
    if v.startswith("very "):
        v = v[5:]
    return V.SIZE_CLASS_OF_WORD.get(v, v if v in ("small", "medium", "large") else "")


def normalise_intensity(value: Any) -> str:
    v = str(value or "").strip().lower()
    for prefix in ("hyper", "hypo", "iso"):
        if v.startswith(prefix):
            return prefix
    return {"brighter": "hyper", "darker": "hypo", "similar": "iso"}.get(v, "")


# ---- the scorer -----------------------------------------------------------------------------


_PRONOUN_START = re.compile(r"^\s*(it|its|they|their|this|these)\b", re.IGNORECASE)


def _named_rois(sentence: str, facts: Facts) -> list[RoiClaims]:
    low = sentence.lower()
    out = []
    for r in facts.claims:
        label = r.label.strip().lower().replace("_", " ")
        if label and (_has_term(low, label) or _has_term(low, label + "s")):  # 'both kidneys' names the kidneys
            out.append(r)
    return out


def _relevant_rois(sentence: str, facts: Facts) -> list[RoiClaims]:
    """ROIs a sentence talks about: the findings it names, else -- when it speaks of a finding ('a lesion
    in the liver') -- the findings in the organs it names, else the anatomy it names, else the ROIs in an
    organ it names, else all of them."""
    low = sentence.lower()
    named = _named_rois(sentence, facts)
    if any(r.is_finding for r in named):  # a sentence about a finding describes the finding, not its organ
        return [r for r in named if r.is_finding]
    organs = {o for o, _ in V.organ_mentions(low)}
    if _FINDING_RE.search(low):
        inside = [r for r in facts.claims if r.is_finding and r.organ and r.organ in organs]
        if inside:
            return inside
    if not named:
        named = [r for r in facts.claims if r.organ and r.organ in organs]
    return named or list(facts.claims)


def _check_modality(text: str, where: str, facts: Facts) -> list[Issue]:
    fact_cls = facts.modality_class
    if not fact_cls:
        return []
    allowed = {fact_cls} | set(V.MODALITY_BY_CLASS[fact_cls].compatible)
    low = text.lower()
    issues, seen = [], set()
    for cls, term, pos in V.modality_mentions(low):
        if cls in allowed or cls in seen or _negated(low, pos):
            continue
        seen.add(cls)
        issues.append(Issue("modality", where, term, facts.modality))
    return issues


def _check_organs(text: str, where: str, facts: Facts, region_only: bool = False) -> list[Issue]:
    fact_organs = facts.organs()
    fact_regions = facts.regions()
    if not fact_organs:
        return []  # nothing known about anatomy: nothing to contradict
    # ROIs that name anatomy (organ labels or containing organs) enumerate what the image shows
    enumerated = any(r.organ or (r.label and not r.is_finding) for r in facts.claims)
    near = set(fact_regions)
    for reg in fact_regions:
        near |= V.REGION_ADJACENT.get(reg, frozenset())
    issues: list[Issue] = []
    seen: set[str] = set()
    low = text.lower()
    for organ, pos in V.organ_mentions(low):
        if organ in seen or organ in fact_organs or _negated(low, pos):
            continue
        seen.add(organ)
        if V.organ_family(organ) in fact_organs:
            continue  # a part of an organ the facts hold (the retina of an eye, the pleura of a lung)
        regions = set(V.organ_regions(organ))
        if organ in regions and organ in fact_regions:
            continue  # naming the region ("abdominal") of an organ that is in the facts
        if regions & fact_regions and not enumerated:
            continue  # the facts name only the region: its organs are neither confirmed nor absent
        if regions and fact_regions and not regions & near:
            issues.append(Issue("organ", where, organ, facts.organ or ",".join(sorted(fact_organs))))
        elif not region_only:
            issues.append(Issue("absent_organ", where, organ, ",".join(sorted(fact_organs))))
    return issues


def _check_findings(text: str, where: str, facts: Facts) -> list[Issue]:
    if facts.has_finding():
        return []
    low = text.lower()
    for m in _FINDING_RE.finditer(low):
        if not _negated(low, m.start()):
            return [Issue("absent_finding", where, m.group(1), "no finding in the facts")]
    return []


def _check_sentence_facts(text: str, where: str, facts: Facts, quoted: tuple[str, ...] = ()) -> list[Issue]:
    issues: list[Issue] = []
    previous: list[RoiClaims] = []
    for sentence in _sentences(text):
        if quoted and _is_quoted(sentence, quoted):
            continue  # general knowledge ("small nodules are mostly benign") is not a claim about this image
        rois = _relevant_rois(sentence, facts)
        if previous and _PRONOUN_START.match(sentence) and not any(r.is_finding for r in _named_rois(sentence, facts)):
            rois = previous  # "It is hypodense to the liver": 'it' is the finding the last sentence spoke of
        previous = rois
        # side
        sides = {r.side for r in rois if r.side} | ({facts.laterality} if facts.laterality else set())
        allowed_sides = set(sides)
        if "bilateral" in sides:
            allowed_sides |= {"left", "right"}
        if {"left", "right"} <= sides:
            allowed_sides.add("bilateral")
        for side in _side_mentions(sentence):
            if side not in allowed_sides:
                issues.append(Issue("side", where, side, ",".join(sorted(sides)) or "unknown"))
        # size
        sizes = {r.size_class for r in rois if r.size_class}
        if sizes:
            for size in _size_mentions(sentence):
                if size not in sizes:
                    issues.append(Issue("size", where, size, ",".join(sorted(sizes))))
        # intensity
        intens = {r.intensity for r in rois if r.intensity}
        if intens:
            for cls in _intensity_mentions(sentence):
                if cls not in intens:
                    issues.append(Issue("intensity", where, cls, ",".join(sorted(intens))))
        # ROI count
        for number, noun in _count_mentions(sentence):
            issue = _check_count(number, noun, facts)
            if issue:
                issues.append(Issue("roi_count", where, f"{number} {noun}", issue))
    return issues


def _check_count(number: str, noun: str, facts: Facts) -> str:
    """'' when the count matches some count in the facts, else the counts the facts allow."""
    counts = {len(facts.claims), len(facts.abnormal_rois())}
    per_label: dict[str, int] = {}
    for r in facts.claims:
        per_label[r.label] = per_label.get(r.label, 0) + 1
    counts |= set(per_label.values())
    if facts.rois:
        counts.discard(0)  # "no finding" is not a count of regions when regions exist
    if number in ("multiple", "several", "numerous"):
        ok = any(c >= 2 for c in counts)
    else:
        n = int(number) if number.isdigit() else V.COUNT_WORDS.get(number, -1)
        if n == 1 and noun in ("region", "component", "focus", "finding") and facts.rois:
            return ""  # "one region" is used loosely for one of several
        ok = n in counts
    return "" if ok else ",".join(str(c) for c in sorted(counts))


def _norm_ws(text: str) -> str:
    return " ".join(text.split())


def _is_quoted(sentence: str, quoted: tuple[str, ...]) -> bool:
    s = _norm_ws(sentence)
    return bool(s) and any(s in q for q in quoted)


def score_text(text: str, where: str, facts: Facts, quoted: tuple[str, ...] = ()) -> list[Issue]:
    """Every issue found in one piece of text. ``quoted``: clauses that quote retrieved knowledge; they
    are still checked for modality, organs and findings, but not read as this image's side/size/intensity."""
    if not text or not text.strip():
        return []
    own, cited = _split_quoted(text, quoted)
    return [
        *[Issue("pipeline_language", where, m.group(0).lower(), "words about the image only")
          for m in V.PIPELINE_RE.finditer(text)],
        *_check_modality(text, where, facts),
        *_check_organs(own, where, facts),
        *_check_organs(cited, where, facts, region_only=True),  # knowledge may name other organs, not other regions
        *_check_findings(own, where, facts),
        *_check_sentence_facts(text, where, facts, quoted),
    ]


def _split_quoted(text: str, quoted: tuple[str, ...]) -> tuple[str, str]:
    """(the text without its quoted clauses, the quoted clauses it contains)."""
    if not quoted:
        return text, ""
    own, cited = _norm_ws(text), []
    for q in quoted:
        if q in own:
            own = own.replace(q, " ")
            cited.append(q)
    return own, " ".join(cited)


def score_triplet(description: str, attributes: Mapping[str, str | None] | None, facts: Facts,
                  quoted: Iterable[str] = ()) -> list[Issue]:
    """Issues of a description and its five attributes against the facts (deduplicated, stable order)."""
    quoted = tuple(_norm_ws(q) for q in quoted if q and q.strip())
    issues = score_text(description or "", "description", facts, quoted)
    for name, text in attribute_texts(attributes).items():
        issues += score_text(text, f"attributes.{name}", facts, quoted)
    seen: set[tuple[str, str, str]] = set()
    out = []
    for i in issues:
        k = (i.kind, i.where, i.found)
        if k not in seen:
            seen.add(k)
            out.append(i)
    return out


def attribute_texts(attributes: Mapping[str, str | None] | None) -> dict[str, str]:
    """The five attributes (the triplet's ``attributes`` struct) that hold text."""
    return {k: v for k, v in (attributes or {}).items() if v}


# ---- facts from table rows --------------------------------------------------------------------


def facts_from_row(row: Mapping[str, Any], rois: Iterable[Mapping[str, Any]] | None = None) -> Facts:
    """Facts of one triplet row (``TRIPLET_SCHEMA``): its image columns and its ROIs, given as ``rois``
    table rows or, when ``rois`` is None, the compact copies the triplet keeps in ``rois_json``."""
    if rois is None:
        embedded = json_or_value(row.get("rois_json"))
        rois = embedded if isinstance(embedded, list) else []
    return Facts(
        modality=str(row.get("modality") or ""),
        organ=str(row.get("organ") or ""),
        disease=str(row.get("disease") or ""),
        labels=tuple(str(x) for x in row.get("labels") or () if x is not None),
        rois=tuple(RoiFacts.from_row(r) for r in rois),
        body_region=str(row.get("body_region") or ""),
        laterality=str(row.get("laterality") or ""),
    )


def quoted_clauses(row: Mapping[str, Any]) -> list[str]:
    """Texts of the clauses a generator drew from a retrieved passage or from the caption the source ships
    (``clauses_json`` sources ``passage:...`` / ``caption:...`` / ``quote:...``): read as borrowed, not as a
    measured claim; [] when the row does not trace its clauses."""
    clauses = json_or_value(row.get("clauses_json") or row.get("clauses"))
    if not isinstance(clauses, list):
        return []
    return [str(c.get("text") or "") for c in clauses
            if isinstance(c, Mapping) and str(c.get("source") or "").startswith(("passage:", "quote:", "caption:"))]


@dataclass
class ShardScore:
    """Per-shard summary: the gate compares ``contradiction_rate`` with the configured maximum."""

    scored: int
    flagged: int
    by_kind: dict[str, int]
    per_triplet: dict[str, list[dict[str, str]]]

    @property
    def contradiction_rate(self) -> float:
        return self.flagged / self.scored if self.scored else 0.0


def score_rows(rows: Iterable[Mapping[str, Any]], rois_by_sample: Mapping[str, list] | None = None) -> ShardScore:
    """Score every successful triplet row of a shard (failed triplets have no description to judge)."""
    per: dict[str, list[dict[str, str]]] = {}
    by_kind = {k: 0 for k in ISSUE_KINDS}
    scored = flagged = 0
    for row in rows:
        if row.get("status") != "ok":
            continue
        sid = str(row.get("sample_id") or row.get("id") or scored)
        rois = rois_by_sample.get(sid) if rois_by_sample is not None else None
        facts = facts_from_row(row, rois)
        issues = score_triplet(str(row.get("description") or ""), row.get("attributes"), facts, quoted_clauses(row))
        scored += 1
        if issues:
            flagged += 1
            per[sid] = [i.as_dict() for i in issues]
            for kind in {i.kind for i in issues}:
                by_kind[kind] += 1
    return ShardScore(scored=scored, flagged=flagged, by_kind=by_kind, per_triplet=per)
