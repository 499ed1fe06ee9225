"""Which sides, modalities and organs a text mentions, and which of those the facts do not support.

Used twice: the grounded composer only borrows knowledge sentences that pass, and answers from a
language model are rejected (then repaired once) when they name a side, modality or organ that
the sample's facts do not contain — the failure mode of the original captions (a breast MRI
described as a brain scan, invented locations).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from medtrinity_assets.generation.coarse_caption import canonical_modality, humanise
from medtrinity_assets.generation.records import SampleFacts

SIDE_RE = re.compile(r"\b(left|right|bilateral(?:ly)?|both sides)\b", re.IGNORECASE)

# canonical modality code -> pattern of the words that name it in prose
MODALITY_PATTERNS: dict[str, str] = {
    "CT": r"\bCT\b|computed tomograph\w*|\bhounsfield\b",
    "MR": r"\bMRI?\b|magnetic resonance|\bT[12]-?weighted\b|\bFLAIR\b",
    "XR": r"\bX-?ray\b|radiograph\w*",
    "MG": r"mammogra\w*",
    "US": r"ultrason\w*|ultrasound|sonograph\w*|\bechogenic\w*",
    "PT": r"\bPET\b|positron emission",
    "FUNDUS": r"fundus|fundoscop\w*",
    "HISTO": r"histolog\w*|histopatholog\w*|\bH&E\b|haematoxylin|hematoxylin",
    "DERM": r"dermoscop\w*|dermatoscop\w*",
}
# one alternation with a named group per modality/organ: one scan of the text instead of one per name
_MODALITY_RE = re.compile("|".join(f"(?P<{code}>{p})" for code, p in MODALITY_PATTERNS.items()), re.IGNORECASE)
MODALITY_ALIASES = {"MRI": "MR", "CR": "XR", "DX": "XR", "XA": "XR", "NM": "PT"}

# canonical organ -> pattern; regions list the organs they contain
ORGAN_PATTERNS: dict[str, str] = {
    "brain": r"\bbrain\b|cerebr\w*|\bcranial\b|intracranial|hemispher\w*",
    "lung": r"\blungs?\b|pulmonar\w*|\bpleura\w*|\bbronch\w*|\balveol\w*",
    "heart": r"\bheart\b|cardiac|\bcardio\w*",
    "liver": r"\bliver\b|hepat\w*",
    "kidney": r"\bkidneys?\b|\brenal\b|nephr\w*",
    "spleen": r"\bspleen\b|splenic",
    "pancreas": r"pancrea\w*",
    "breast": r"\bbreasts?\b|mammar\w*",
    "bone": r"\bbones?\b|osseous|skelet\w*|\bvertebra\w*|\bspine\b|spinal|\bfractur\w*",
    "skin": r"\bskin\b|cutaneous|dermal|epiderm\w*|melanocyt\w*",
    "colon": r"\bcolon\b|colorectal|\bbowel\b|intestin\w*|\brect\w+",
    "eye": r"\bretina\w*|\boptic dis[ck]\b|\bmacula\w*|\bfundus\b|ocular",
    "prostate": r"prostat\w*",
    "bladder": r"\bbladder\b",
    "stomach": r"\bstomach\b|gastric",
    "thyroid": r"thyroid",
}
_ORGAN_RE = re.compile("|".join(f"(?P<{organ}>{p})" for organ, p in ORGAN_PATTERNS.items()), re.IGNORECASE)
REGION_CONTAINS: dict[str, tuple[str, ...]] = {
    "abdomen": ("liver", "kidney", "spleen", "pancreas", "stomach", "colon", "bladder", "bone"),
    "pelvis": ("bladder", "prostate", "colon", "bone"),
    "chest": ("lung", "heart", "bone", "breast"),
    "thorax": ("lung", "heart", "bone", "breast"),
    "head": ("brain", "bone", "eye"),
    "brain": ("brain",),
    "retina": ("eye",),
    "colon": ("colon",),
    "body": (),
}


def modality_code(code: str) -> str:
    c = canonical_modality(code)
    return MODALITY_ALIASES.get(c, c)


def modalities_in(text: str) -> set[str]:
    return {m.lastgroup for m in _MODALITY_RE.finditer(text)}


def organs_in(text: str) -> set[str]:
    return {m.lastgroup for m in _ORGAN_RE.finditer(text)}


def sides_in(text: str) -> set[str]:
    out = set()
    for m in SIDE_RE.finditer(text):
        w = m.group(1).lower()
        out.add(w if w in ("left", "right") else "bilateral")
    return out


@functools.lru_cache(maxsize=4096)
def _organs_of_phrase(phrase: str) -> frozenset[str]:
    words = humanise(phrase).lower()
    found = set(organs_in(words))
    for region, contained in REGION_CONTAINS.items():
        if re.search(rf"\b{region}\b", words):
            found.add(region)
            found.update(contained)
    return frozenset(found)


INTENSITY_RE = re.compile(r"\b(hypo|hyper|iso)[- ]?(dense|densit\w*|intens\w*|attenuat\w*|echoic\w*)", re.IGNORECASE)


def intensities_in(text: str) -> set[str]:
    """'hypo' / 'hyper' / 'iso' for every density/intensity/echogenicity word in ``text``."""
    return {m.group(1).lower() for m in INTENSITY_RE.finditer(text)}


@dataclass(frozen=True)
class Allowed:
    """What a text about one sample may mention."""

    sides: frozenset[str]
    modalities: frozenset[str]
    organs: frozenset[str]
    intensities: frozenset[str]


def allowed_facts(facts: SampleFacts) -> Allowed:
    sides = {r.side for r in facts.rois if r.side in ("left", "right")}
    if len(sides) == 2:
        sides.add("bilateral")
    mod = modality_code(facts.image.modality)
    modalities = {mod} if mod else set()
    organs: set[str] = set()
    for phrase in (facts.image.organ, facts.image.disease, *facts.image.labels,
                   *(r.label for r in facts.rois), *(r.region for r in facts.rois),
                   *(str(rel.get("target", "")) for r in facts.rois for rel in r.relations)):
        if phrase:
            organs.update(_organs_of_phrase(phrase))
    organs.update(MODALITY_IMPLIES_ORGAN.get(mod, ()))
    intensities = set()
    for r in facts.findings:
        intensities.update(intensities_in(r.intensity))
    return Allowed(frozenset(sides), frozenset(modalities), frozenset(organs), frozenset(intensities))


MODALITY_IMPLIES_ORGAN = {"FUNDUS": ("eye",), "DERM": ("skin",), "MG": ("breast",)}


def contradictions(text: str, allowed: Allowed, check_intensity: bool = True) -> list[str]:
    """Statements in ``text`` the facts do not support, as short reasons (empty list = consistent)."""
    problems = []
    for s in sorted(sides_in(text) - allowed.sides):
        problems.append(f"mentions side '{s}' but the facts give {sorted(allowed.sides) or 'no side'}")
    for m in sorted(modalities_in(text) - allowed.modalities):
        problems.append(f"mentions modality {m} but the image is {sorted(allowed.modalities) or 'of unknown modality'}")
    for o in sorted(organs_in(text) - allowed.organs):
        problems.append(f"mentions organ '{o}' which is not in the facts ({sorted(allowed.organs) or 'no organ'})")
    if check_intensity and allowed.intensities:
        for i in sorted(intensities_in(text) - allowed.intensities):
            problems.append(f"calls a region {i}-dense/-intense but the measured intensity is {sorted(allowed.intensities)}")
    return problems


def check_against_facts(text: str, facts: SampleFacts) -> list[str]:
    return contradictions(text, allowed_facts(facts))
