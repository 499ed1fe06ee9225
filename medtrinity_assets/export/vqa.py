"""Visual question answering from the facts: question–answer pairs worth training on, like the paper's
caption-to-VQA step but read from the structured facts, never parsed back out of the prose.

Every answer is a fact of the image or of one of its regions (the ROI facts record and the per-image
``image_facts`` row): its modality, body region, organs, findings and how many there are, a finding's
side, containing organ, neighbours and distances, diameter in millimetres, intensity, texture, shape
and margin. A question is only asked where the facts settle it: "no" to "is there a cyst?" needs a
ground-truth annotation of the image that would have shown one; a count needs ground truth too; a
size in millimetres needs the pixel spacing. A finding is named so that the name gives away neither
the answer nor another finding of the image ("the lesion" rather than "the hyperdense liver lesion"
when asking how it appears), and a question whose answer still appears in it is dropped.

Closed yes/no questions come as *slots* with a "yes" and a "no" wording where the facts allow both;
one is kept per slot when the parts are merged, so that yes and no are balanced exactly within every
question type and split (:func:`balance`). Multiple-choice options are plausible distractors: other
modalities of the same family, organs of the image or its body region, findings the annotation rules
out. Every prompt carries LLaVA-1.5's answer-format instruction.

Files: the part of a shard is ``candidates.jsonl`` (one sample per line); the dataset folder holds,
per split, ``<split>.jsonl`` (one question per line: ``question_id``, ``image``, ``text`` = question +
instruction, ``answer``, ``answer_type`` OPEN|CLOSED, ``question_type``, ... — LLaVA's question-file
form, which ``vqa_eval`` scores) and ``<split>_llava.json`` (one multi-turn LLaVA record per image).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtrinity_assets import vocabulary as vocab
from medtrinity_assets.export.llava import conversation, image_ref, write_json_list
from medtrinity_assets.export.samples import ExportSample
from medtrinity_assets.quality.splits import SPLITS
from medtrinity_assets.roi.facts import RoiFacts
from medtrinity_assets.storage import atomic_write_text

SHORT_ANSWER = "Answer the question using a single word or phrase."  # LLaVA-1.5's short-answer instruction
MULTIPLE_CHOICE = "Answer with the option's letter from the given choices directly."  # LLaVA-1.5's for options
QUESTION_TYPES = (
    "modality", "body_region", "anatomy", "presence", "counting", "position", "organ_location", "relation",
    "size", "size_comparison", "intensity", "texture", "shape", "margin", "measurement", "multiple_choice",
)
CANDIDATES_FILE = "candidates.jsonl"
MAX_FINDINGS = 3  # findings asked about per image (the largest first)
MAX_CHOICE = 2  # multiple-choice questions per image
SIZE_STEPS_MM = (5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150)
SIZE_MARGIN = 1.3  # a threshold at least 30 % away from the measured diameter: no borderline answers
COMPARISON_RATIO = 1.25  # two findings are compared only when one is clearly larger
MIN_DIFFERENCE_MM = 2.0
MAX_COUNT = 10
REGION_PHRASE = {"limb": "a limb", "skin": "the skin surface"}  # "an image of the head", "an image of a limb"
INTENSITY_OPPOSITE = {"hyper": "hypo", "hypo": "hyper", "iso": "hyper", "brighter": "darker", "darker": "brighter",
                      "similar": "brighter"}
SHAPE_OPPOSITE = {"round": "irregular", "oval": "irregular", "lobulated": "round", "irregular": "round"}
TEXTURE_OPPOSITE = {"homogeneous": "heterogeneous", "heterogeneous": "homogeneous"}
MARGIN_OPPOSITE = {"well_defined": "ill_defined", "ill_defined": "well_defined"}
NOT_ORGANS = vocab.NORMAL_LABELS  # reference regions that are no organ (body outline, bone, fat ...)
_STOP = frozenset({"a", "an", "the", "of", "in", "on", "is", "are", "this", "image", "to", "and", "or", "than", "mm"})


# ---- the facts a question reads --------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One region's facts (a :class:`RoiFacts` record) as the questions read them: names humanised, the body
    outline dropped from its relations, distances kept only with their unit."""

    label: str
    kind: str  # finding | anatomy
    origin: str
    side: str = ""
    diameter_mm: float | None = None
    intensity: str = ""
    texture: str = ""
    shape: str = ""
    margin: str = ""
    inside: tuple[str, ...] = ()
    overlaps: tuple[str, ...] = ()
    adjacent: tuple[str, ...] = ()
    nearest_organ: str = ""
    in_mm: bool = False  # relation distances are in mm (the spacing is known)
    others: tuple[tuple[str, float], ...] = ()  # (label, centroid distance) of the image's other findings
    edge_mm: float | None = None  # to the nearest organ's edge (inside it: how close it comes to the surface)
    area: float = 0.0

    @property
    def ground_truth(self) -> bool:
        return self.origin == "ground_truth"

    @classmethod
    def of(cls, f: RoiFacts) -> Finding:
        rel = f.relations

        def organs(names) -> tuple[str, ...]:
            return tuple(vocab.humanise(n) for n in names if n and n != "body")

        diameter = f.equivalent_diameter_mm
        return cls(
            label=vocab.humanise(f.label), kind=f.kind or "finding", origin=f.origin, side=f.side or "",
            diameter_mm=diameter if diameter is not None and math.isfinite(diameter) else None,
            intensity=f.intensity, texture=f.texture, shape=f.shape, margin=f.margin,
            inside=organs(rel.inside), overlaps=organs(rel.overlaps), adjacent=organs(rel.adjacent),
            nearest_organ=(organs([rel.nearest_organ]) or ("",))[0] if rel.nearest_organ else "",
            in_mm=rel.distance_unit == "mm",
            others=tuple((vocab.humanise(o.label), float(o.distance)) for o in rel.other_lesions or ()),
            edge_mm=rel.distance_to_organ_edge_mm,
            area=float(f.area_fraction or 0.0),
        )


@dataclass
class ImageContext:
    """What the questions of one image may use besides its regions."""

    known_labels: frozenset[str] = frozenset()  # labels the image's ground-truth annotation would have shown
    label_kinds: Mapping[str, str] = field(default_factory=dict)  # label -> finding | anatomy (of the source)


# ---- words ---------------------------------------------------------------------------------------------


def _hash(*parts: str) -> int:
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12], 16)


def _pick(options: Sequence[str], *seed: str) -> str:
    return options[_hash(*seed) % len(options)]


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", str(text).lower())


def answer_in_question(question: str, answer: str) -> bool:
    """True when every content word of the answer already appears in the question."""
    words = [t for t in tokens(answer) if t not in _STOP]
    return bool(words) and set(words) <= set(tokens(question))


def plural(noun_phrase: str) -> str:
    head, _, last = noun_phrase.rpartition(" ")
    if re.search(r"(s|x|z|ch|sh)$", last):
        last += "es"
    elif re.search(r"[^aeiou]y$", last):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}".strip()


def _organ_words(label: str) -> set[str]:
    return {t for t in tokens(label) if t in vocab.ORGAN_SYNONYMS}


def _intensity_word(label: str) -> bool:
    return any(t.startswith(vocab.INTENSITY_PREFIXES) and t.endswith(vocab.INTENSITY_STEMS) for t in tokens(label))


def _reductions(label: str) -> list[str]:
    """Ways to name a finding, most specific first: the label, without organ words, without intensity
    words, its last word."""
    words = label.split()
    no_organ = [w for w in words if w.lower() not in vocab.ORGAN_SYNONYMS]
    plain = [w for w in no_organ if not _intensity_word(w)]
    out = []
    for cand in (words, no_organ, plain, words[-1:]):
        phrase = " ".join(cand)
        if phrase and phrase not in out:
            out.append(phrase)
    return out


def refer(f: Finding, findings: Sequence[Finding], avoid: Iterable[str] = ()) -> str:
    """The most specific name of ``f`` that contains none of ``avoid`` and names no other finding of the
    image; '' when there is none."""
    avoid_words = {t for a in avoid for t in tokens(a) if t not in _STOP}
    others = [g for g in findings if g is not f]
    for name in _reductions(f.label):
        if avoid_words & set(tokens(name)):
            continue
        if any(name in _reductions(g.label) for g in others):
            continue
        return name
    return ""


def _intensity_family(value: str) -> tuple[str, str]:
    """'hypodense' -> ('hypo', 'dense'); 'brighter' -> ('brighter', '')."""
    for prefix in vocab.INTENSITY_PREFIXES:
        if value.startswith(prefix):
            return prefix, value[len(prefix):]
    return value, ""


def _intensity_phrase(value: str) -> str:
    """How a question says an intensity relative to the surrounding tissue."""
    if value in vocab.RELATIVE_INTENSITY_WORDS:
        return vocab.RELATIVE_INTENSITY_WORDS[value]
    return f"{value} to"


def _region_of(s: ExportSample) -> str:
    """The body region the facts give: the image_facts row's when it agrees with (or there is no)
    metadata, else the metadata organ's region; '' when neither says."""
    facts = s.image_facts or {}
    if facts.get("agrees_with_metadata") is False:
        return ""  # the expert and the metadata disagree: ask nothing rather than guess
    return _region_of_word(str(facts.get("body_region") or "")) or _region_of_word(s.organ)


def _region_of_word(word: str) -> str:
    """'abdomen' -> 'abdomen', 'brain' -> 'head', 'extremity' -> 'limb', unknown -> ''."""
    organ = vocab.ORGAN_SYNONYMS.get(vocab.humanise(word).lower(), "")
    return organ if organ in vocab.REGIONS else vocab.ORGAN_REGION.get(organ, "")


def _region_phrase(region: str) -> str:
    return REGION_PHRASE.get(region, f"the {region}")


def _modality_name(m: vocab.Modality) -> str:
    """'an MRI image', 'a fundus photograph'."""
    name = m.qa_name
    return vocab.with_article(f"{name} image" if vocab.needs_noun(name) else name)


# ---- candidates ------------------------------------------------------------------------------------------


@dataclass
class Candidates:
    """One image's questions before balancing: open/choice items as they are, yes/no slots with their wordings."""

    sample_id: str
    items: list[dict[str, Any]] = field(default_factory=list)

    def open(self, qtype: str, question: str, answer: str) -> None:
        if answer and not answer_in_question(question, answer):
            self.items.append({"type": qtype, "kind": "open", "question": question, "answer": answer})

    def yes_no(self, qtype: str, yes: str | None, no: str | None) -> None:
        if yes or no:
            self.items.append({"type": qtype, "kind": "yes_no", "yes": yes, "no": no})

    def choice(self, qtype: str, question: str, correct: str, distractors: Sequence[str], *seed: str) -> None:
        """Options A-D: the correct one at a position chosen by hash (uniform over the dataset)."""
        opts = [d for d in dict.fromkeys(distractors) if d and d != correct][:3]
        if len(opts) < 2:
            return
        pos = _hash(self.sample_id, qtype, *seed) % (len(opts) + 1)
        opts.insert(pos, correct)
        letters = "ABCD"
        lines = "\n".join(f"{letters[i]}. {o}" for i, o in enumerate(opts))
        self.items.append({"type": qtype, "kind": "choice", "question": f"{question}\n{lines}",
                           "answer": letters[pos], "answer_text": correct})


def _modality_questions(c: Candidates, s: ExportSample) -> None:
    m = vocab.modality(s.modality)
    if m is None:
        return
    sid = s.id
    c.open("modality", _pick(("What imaging modality was used to acquire this image?",
                              "Which imaging technique produced this image?",
                              "What type of imaging is shown here?",
                              "With which modality was this image obtained?"), sid, "mo"), m.qa_name)
    # a distractor of the image's own family: a CT is confused with an MRI, not with a histology slide
    photographic = m.code in vocab.PHOTOGRAPHIC
    others = [o for o in vocab.MODALITIES if o.code != m.code and (o.code in vocab.PHOTOGRAPHIC) == photographic]
    if not others:
        return
    other = others[_hash(sid, "mn") % len(others)]
    c.yes_no("modality", f"Is this {_modality_name(m)}?", f"Is this {_modality_name(other)}?")
    ordered = sorted(others, key=lambda o: _hash(sid, "mch", o.code))
    c.choice("multiple_choice", "Which imaging modality was used for this image?", m.qa_name,
             [o.qa_name for o in ordered], "modality")


def _region_questions(c: Candidates, s: ExportSample) -> None:
    m = vocab.modality(s.modality)
    if m is not None and m.code in vocab.PHOTOGRAPHIC:
        return  # a slide or a photograph shows tissue or a surface, not a body region ("abdomen" for a colon biopsy)
    region = _region_of(s)
    if not region:
        return
    sid = s.id
    c.open("body_region", _pick(("Which part of the body is shown in this image?",
                                 "Which body region does this image show?",
                                 "What anatomical region is imaged here?"), sid, "br"), region)
    far = sorted(r for r in vocab.REGIONS if r != region and r not in vocab.REGION_ADJACENT.get(region, ()))
    if far:
        other = far[_hash(sid, "brn") % len(far)]
        c.yes_no("body_region", f"Is this an image of {_region_phrase(region)}?", f"Is this an image of {_region_phrase(other)}?")
        c.choice("multiple_choice", "Which body region is shown in this image?", region,
                 sorted(far, key=lambda r: _hash(sid, "brc", r)), "region")


def _organs_seen(s: ExportSample, findings: Sequence[Finding]) -> list[str]:
    names = {f.label for f in findings if f.kind == "anatomy"}
    names |= {vocab.humanise(o) for o in (s.image_facts or {}).get("organs") or ()}
    return sorted(n for n in names if n in vocab.ORGAN_BY_NAME and n not in NOT_ORGANS)


def _anatomy_questions(c: Candidates, s: ExportSample, findings: Sequence[Finding], ctx: ImageContext) -> None:
    seen = _organs_seen(s, findings)
    sid = s.id
    if len(seen) >= 2:
        c.open("anatomy", _pick(("Which organs can be seen in this image?", "Which organs are visible here?"), sid, "an"),
               vocab.join_words(seen))
    absent = sorted(lab for lab in ctx.known_labels
                    if ctx.label_kinds.get(lab) == "anatomy" and lab not in seen and lab in vocab.ORGAN_BY_NAME
                    and lab not in NOT_ORGANS)
    for n, organ in enumerate(sorted(seen, key=lambda o: _hash(sid, "ao", o))[:2]):
        no = absent[(_hash(sid, "aa", str(n))) % len(absent)] if absent else None
        template = _pick(("Is the {} visible in this image?", "Can the {} be seen in this image?"), sid, "at", str(n))
        c.yes_no("anatomy", template.format(organ), template.format(no) if no else None)
        if no:
            absent.remove(no)


def _finding_questions(c: Candidates, s: ExportSample, findings: Sequence[Finding], ctx: ImageContext) -> None:
    sid = s.id
    lesions = [f for f in findings if f.kind == "finding" and f.label]
    labels = sorted({f.label for f in lesions})
    annotated_gt = bool(ctx.known_labels) and all(f.ground_truth for f in lesions)
    absent = sorted(lab for lab in ctx.known_labels if ctx.label_kinds.get(lab, "finding") == "finding"
                    and lab not in labels)
    # presence
    for n, label in enumerate(sorted(labels, key=lambda lab: _hash(sid, "pr", lab))[:MAX_FINDINGS]):
        template = _pick(("Is there {} in this image?", "Does this image show {}?", "Can {} be seen in this image?"),
                         sid, "pt", label)
        no = absent[_hash(sid, "pa", str(n)) % len(absent)] if annotated_gt and absent else None
        c.yes_no("presence", template.format(vocab.with_article(label)),
                 template.format(vocab.with_article(no)) if no else None)
    if annotated_gt and absent and not labels:
        no = absent[_hash(sid, "p0") % len(absent)]
        c.yes_no("presence", None, f"Is there {vocab.with_article(no)} in this image?")
    if annotated_gt and len(absent) >= 2 and labels:
        correct = labels[_hash(sid, "pmc") % len(labels)]
        c.choice("multiple_choice", "Which of these findings can be seen in this image?", correct,
                 sorted(absent, key=lambda lab: _hash(sid, "pmd", lab)), "presence")
    # counting, per annotated label only: ground truth says how many of *that* finding there are (a model's
    # silence proves nothing, and an annotation of liver tumours says nothing about kidney cysts)
    if annotated_gt:
        counts = Counter(f.label for f in lesions)
        for label, n in sorted(counts.items()):
            if n <= MAX_COUNT:
                c.open("counting", _pick(("How many {} are visible in this image?", "How many {} does this image show?"),
                                         sid, "ct", label).format(plural(label)), str(n))
        if absent and not counts:  # one zero count, so that "how many" is not always answered with a positive number
            label = absent[_hash(sid, "c0") % len(absent)]
            c.open("counting", f"How many {plural(label)} are visible in this image?", "0")
    # per finding: the largest few
    organs_here = set(_organs_seen(s, findings))
    for f in sorted(lesions, key=lambda f: (-f.area, f.label))[:MAX_FINDINGS]:
        if sum(1 for g in lesions if g.label == f.label) > 1:
            continue  # two findings with one name: "the cyst" would not say which
        _one_finding(c, sid, f, lesions, organs_here)
    _comparisons(c, sid, lesions)


def _one_finding(c: Candidates, sid: str, f: Finding, lesions: Sequence[Finding], organs_here: set[str]) -> None:
    key = f.label
    name = refer(f, lesions)
    if not name:
        return
    # position (patient side)
    if f.side in vocab.SIDES:
        c.open("position", _pick(("On which side of the patient is the {}?", "Which side of the body is the {} on?"),
                                 sid, "po", key).format(name), f.side)
        other = "left" if f.side == "right" else "right"
        c.yes_no("position", f"Is the {name} on the patient's {f.side} side?", f"Is the {name} on the patient's {other} side?")
    # which organ contains it
    if len(f.inside) == 1 and f.inside[0] in vocab.ORGAN_BY_NAME:
        organ = f.inside[0]
        ref = refer(f, lesions, avoid=[organ])
        if ref:
            c.open("organ_location", _pick(("Which organ contains the {}?", "In which organ is the {} located?"),
                                           sid, "ol", key).format(ref), organ)
            elsewhere = sorted(o for o in organs_here if o != organ and o not in f.overlaps and o not in f.adjacent)
            no = elsewhere[_hash(sid, "oln", key) % len(elsewhere)] if elsewhere else None
            c.yes_no("organ_location", f"Is the {ref} located in the {organ}?", f"Is the {ref} located in the {no}?" if no else None)
            region = vocab.ORGAN_REGION.get(organ, "")
            pool = sorted(o for o in (organs_here | set(vocab.organs_of_region(region)) if region else organs_here)
                          if o != organ and o not in NOT_ORGANS and o not in vocab.REGIONS and o not in f.overlaps)
            c.choice("multiple_choice", f"Which organ contains the {ref}?", organ,
                     sorted(pool, key=lambda o: _hash(sid, "olc", key, o)), "organ", key)
    # neighbours
    if f.adjacent:
        organ = f.adjacent[_hash(sid, "ad", key) % len(f.adjacent)]
        ref = refer(f, lesions, avoid=[organ])
        if ref:
            far = sorted(o for o in organs_here if o not in f.adjacent and o not in f.inside and o not in f.overlaps)
            no = far[_hash(sid, "adn", key) % len(far)] if far else None
            c.yes_no("relation", f"Does the {ref} lie next to the {organ}?", f"Does the {ref} lie next to the {no}?" if no else None)
    elif not f.inside and not f.overlaps and f.nearest_organ and f.nearest_organ in vocab.ORGAN_BY_NAME:
        ref = refer(f, lesions, avoid=[f.nearest_organ])
        if ref:
            c.open("relation", f"Which organ is closest to the {ref}?", f.nearest_organ)
    # how close it comes to the surface of its organ (inside), or how far it lies from the nearest organ
    edge = f.edge_mm
    if f.in_mm and edge is not None and edge >= 1.0 and f.nearest_organ in vocab.ORGAN_BY_NAME:
        organ = f.nearest_organ
        ref = refer(f, lesions, avoid=[organ])
        if ref and organ in f.inside:
            c.open("relation", f"How close does the {ref} come to the edge of the {organ}?", f"{round(edge):d} mm")
        elif ref and not f.overlaps:
            c.open("relation", f"How far is the {ref} from the {organ}?", f"{round(edge):d} mm")
    # size in millimetres
    d = f.diameter_mm
    if d and d > 0:
        c.open("size", _pick(("What is the approximate diameter of the {}?", "About how wide is the {}?"),
                             sid, "sz", key).format(name), f"{round(d):d} mm")
        below = [t for t in SIZE_STEPS_MM if t * SIZE_MARGIN <= d]
        above = [t for t in SIZE_STEPS_MM if t >= d * SIZE_MARGIN]
        yes = f"Is the {name} larger than {below[-1]} mm in diameter?" if below else None
        no = f"Is the {name} larger than {above[0]} mm in diameter?" if above else None
        c.yes_no("size", yes, no)
    # appearance (named without an intensity word: "the hyperdense lesion" would answer its own question)
    plain = refer(f, lesions, avoid=[f.intensity])
    if f.intensity and plain and not _intensity_word(plain):
        c.open("intensity", _pick(("How does the {} appear compared with the surrounding tissue?",
                                   "What is the intensity of the {} relative to its surroundings?"), sid, "in", key)
               .format(plain), f.intensity)
        prefix, stem = _intensity_family(f.intensity)
        opposite = INTENSITY_OPPOSITE.get(prefix, "")
        if opposite:
            other = opposite + stem
            c.yes_no("intensity", f"Is the {plain} {_intensity_phrase(f.intensity)} the surrounding tissue?",
                     f"Is the {plain} {_intensity_phrase(other)} the surrounding tissue?")
    if f.texture in TEXTURE_OPPOSITE:
        c.open("texture", _pick(("What is the texture of the {}?", "How would you describe the internal texture of the {}?"),
                                sid, "tx", key).format(name), f.texture)
        c.yes_no("texture", f"Does the {name} have a {f.texture} texture?",
                 f"Does the {name} have a {TEXTURE_OPPOSITE[f.texture]} texture?")
    if f.shape in SHAPE_OPPOSITE:
        c.open("shape", _pick(("What is the shape of the {}?", "How is the {} shaped?"), sid, "sh", key).format(name), f.shape)
        c.yes_no("shape", f"Is the {name} {f.shape} in shape?", f"Is the {name} {SHAPE_OPPOSITE[f.shape]} in shape?")
    if f.margin in MARGIN_OPPOSITE:
        words = vocab.MARGIN_WORDS[f.margin]
        c.open("margin", f"How are the margins of the {name}?", words.replace("-", " "))
        c.yes_no("margin", f"Does the {name} have {words} margins?",
                 f"Does the {name} have {vocab.MARGIN_WORDS[MARGIN_OPPOSITE[f.margin]]} margins?")


def _comparisons(c: Candidates, sid: str, lesions: Sequence[Finding]) -> None:
    """Size comparison in mm and distance between findings with distinct names."""
    unique = [f for f in lesions if sum(1 for g in lesions if g.label == f.label) == 1]
    pairs = [(a, b) for i, a in enumerate(unique) for b in unique[i + 1:]]
    for a, b in sorted(pairs, key=lambda p: _hash(sid, "cmp", p[0].label, p[1].label))[:2]:
        na, nb = refer(a, lesions), refer(b, lesions)
        if not (na and nb):
            continue
        if a.diameter_mm and b.diameter_mm:
            big, small = (a, b) if a.diameter_mm >= b.diameter_mm else (b, a)
            nbig, nsmall = (na, nb) if big is a else (nb, na)
            if big.diameter_mm >= COMPARISON_RATIO * small.diameter_mm:
                c.yes_no("size_comparison", f"Is the {nbig} larger than the {nsmall}?", f"Is the {nsmall} larger than the {nbig}?")
                diff = big.diameter_mm - small.diameter_mm
                if diff >= MIN_DIFFERENCE_MM:
                    c.open("size_comparison", f"By how many millimetres does the diameter of the {nbig} exceed that of "
                                              f"the {nsmall}?", f"{round(diff):d} mm")
        dist = next((d for label, d in a.others if label == b.label), None) if a.in_mm else None
        if dist:
            c.open("relation", f"How far apart are the {na} and the {nb}?", f"{round(dist):d} mm")
            below = [t for t in SIZE_STEPS_MM if t * SIZE_MARGIN <= dist]
            above = [t for t in SIZE_STEPS_MM if t >= dist * SIZE_MARGIN]
            c.yes_no("relation", f"Are the {na} and the {nb} more than {below[-1]} mm apart?" if below else None,
                     f"Are the {na} and the {nb} more than {above[0]} mm apart?" if above else None)
        if a.side in vocab.SIDES and b.side in vocab.SIDES:
            same = f"Are the {na} and the {nb} on the same side of the patient?"
            c.yes_no("position", same if a.side == b.side else None, same if a.side != b.side else None)


def _measurement_questions(c: Candidates, s: ExportSample) -> None:
    raw = (s.image_facts or {}).get("measurements_json") or {}
    measurements = json.loads(raw) if isinstance(raw, str) else dict(raw)
    ctr = measurements.get("cardiothoracic_ratio")
    if isinstance(ctr, (int, float)) and 0 < ctr < 1:
        c.open("measurement", "What is the cardiothoracic ratio on this radiograph?", f"{ctr:.2f}")


def candidates(s: ExportSample, ctx: ImageContext | None = None) -> Candidates:
    """Every question the sample's facts support, closed ones as yes/no slots."""
    ctx = ctx or ImageContext()
    findings = [Finding.of(f) for f in s.facts if f.label]
    c = Candidates(s.id)
    _modality_questions(c, s)
    _region_questions(c, s)
    _anatomy_questions(c, s, findings, ctx)
    _finding_questions(c, s, findings, ctx)
    _measurement_questions(c, s)
    choices = [i for i in c.items if i["kind"] == "choice"]
    for extra in sorted(choices, key=lambda i: _hash(s.id, "mcx", i["question"]))[MAX_CHOICE:]:
        c.items.remove(extra)
    return c


def image_contexts(samples: Sequence[ExportSample]) -> dict[str, ImageContext]:
    """Per sample: the labels its ground-truth annotation covers (the label map's names, else every
    ground-truth label its source uses in this shard) and the kind of each label."""
    kinds: dict[str, dict[str, str]] = defaultdict(dict)
    for s in samples:
        for f in s.facts:
            if f.origin == "ground_truth" and f.label:
                kinds[s.source].setdefault(vocab.humanise(f.label), f.kind or "finding")
    out = {}
    for s in samples:
        if not s.annotated:
            out[s.id] = ImageContext(label_kinds=kinds[s.source])
            continue
        known = {vocab.humanise(x) for x in s.annotation_labels} or set(kinds[s.source])
        out[s.id] = ImageContext(known_labels=frozenset(k for k in known if k in kinds[s.source]),
                                 label_kinds=kinds[s.source])
    return out


# ---- the part and the dataset files ----------------------------------------------------------------------


def write_part(samples: list[ExportSample], folder: Path, shard: str) -> dict[str, int]:
    """``candidates.jsonl``: one line per sample (id, split, image, question items)."""
    ctx = image_contexts(samples)
    lines, n_items = [], 0
    for s in sorted(samples, key=lambda s: s.id):
        c = candidates(s, ctx[s.id])
        n_items += len(c.items)
        lines.append(json.dumps({"sample_id": s.id, "split": s.split, "image": image_ref(s), "items": c.items},
                                ensure_ascii=False, sort_keys=True))
    atomic_write_text(Path(folder) / CANDIDATES_FILE, "\n".join(lines) + ("\n" if lines else ""))
    return {CANDIDATES_FILE: len(lines), "question_items": n_items}


def balance(slots: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """Choose "yes" or "no" for each yes/no slot ``(slot_id, item)`` of one question type and split so that
    both answers are equally frequent: flexible slots (both wordings) fill the gap left by the one-sided
    ones; when that cannot balance, one-sided slots of the commoner answer are dropped (by hash). Returns
    slot_id -> "yes" | "no" for the slots kept."""
    ordered = sorted(slots, key=lambda sl: _hash(sl[0]))
    forced_yes = [sid for sid, it in ordered if it.get("yes") and not it.get("no")]
    forced_no = [sid for sid, it in ordered if it.get("no") and not it.get("yes")]
    flexible = [sid for sid, it in ordered if it.get("yes") and it.get("no")]
    total = len(forced_yes) + len(forced_no) + len(flexible)
    k = min(max((total + 1) // 2 - len(forced_yes), 0), len(flexible))
    yes = forced_yes + flexible[:k]
    no = forced_no + flexible[k:]
    keep = min(len(yes), len(no))
    # drop from the larger side: one-sided slots first (they are why it is larger), then flexible ones
    yes = sorted(yes, key=lambda sid: (sid in flexible, _hash(sid, "keep")), reverse=True)[:keep]
    no = sorted(no, key=lambda sid: (sid in flexible, _hash(sid, "keep")), reverse=True)[:keep]
    return {**dict.fromkeys(yes, "yes"), **dict.fromkeys(no, "no")}


def _prompt(question: str, kind: str) -> str:
    return f"{question}\n{MULTIPLE_CHOICE if kind == 'choice' else SHORT_ANSWER}"


def merge_parts(part_folders: Iterable[Path], folder: Path) -> dict[str, int]:
    """Balance the yes/no slots of every part, then write ``<split>.jsonl`` and ``<split>_llava.json``."""
    records = []
    for p in part_folders:
        f = Path(p) / CANDIDATES_FILE
        if f.is_file():
            records += [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    records.sort(key=lambda r: r["sample_id"])
    slots: dict[tuple[str, str], list[tuple[str, dict]]] = defaultdict(list)
    for r in records:
        for n, item in enumerate(r["items"]):
            if item["kind"] == "yes_no":
                slots[(r["split"], item["type"])].append((f"{r['sample_id']}#{n}", item))
    chosen: dict[str, str] = {}
    for group in slots.values():
        chosen.update(balance(group))
    counts: dict[str, int] = {}
    for split in SPLITS:
        flat, llava = [], []
        for r in (r for r in records if r["split"] == split):
            turns = []
            for n, item in enumerate(r["items"]):
                if item["kind"] == "yes_no":
                    answer = chosen.get(f"{r['sample_id']}#{n}")
                    if not answer:
                        continue
                    question, answer_type = item[answer], "CLOSED"
                elif item["kind"] == "choice":
                    question, answer, answer_type = item["question"], item["answer"], "CLOSED"
                else:
                    question, answer, answer_type = item["question"], item["answer"], "OPEN"
                qid = f"{r['sample_id']}-q{len(turns):02d}"
                text = _prompt(question, item["kind"])
                flat.append({"question_id": qid, "image": r["image"], "text": text, "question": question,
                             "answer": answer, "answer_type": answer_type, "question_type": item["type"],
                             "sample_id": r["sample_id"], "split": split})
                turns.append((text, answer))
            if turns:
                llava.append(conversation(r["sample_id"], r["image"], turns, split))
        atomic_write_text(Path(folder) / f"{split}.jsonl",
                          "".join(json.dumps(q, ensure_ascii=False, sort_keys=True) + "\n" for q in flat))
        write_json_list(Path(folder) / f"{split}_llava.json", llava)
        counts[f"{split}.jsonl"] = len(flat)
        counts[f"{split}_llava.json"] = len(llava)
    return counts


def summarise(pairs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Figures of a VQA set: pairs, distinct questions and answers, and per question type its count and the
    share of "yes" among its yes/no answers."""
    pairs = list(pairs)
    by_type: dict[str, Counter] = defaultdict(Counter)
    for p in pairs:
        by_type[p["question_type"]]["n"] += 1
        if p["answer"] in ("yes", "no"):
            by_type[p["question_type"]][p["answer"]] += 1
    return {
        "pairs": len(pairs),
        "distinct_questions": len({p["question"] for p in pairs}),
        "distinct_answers": len({p["answer"] for p in pairs}),
        "images": len({p["sample_id"] for p in pairs}),
        "question_types": {t: {"n": c["n"], **({"yes_share": round(c["yes"] / (c["yes"] + c["no"]), 3)}
                                               if c["yes"] + c["no"] else {})}
                           for t, c in sorted(by_type.items())},
    }
