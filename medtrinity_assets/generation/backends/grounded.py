"""The offline default generator: a deterministic composer that phrases the facts and never decides them.

Every clause is built from one fact field (or one retrieved passage) and carries that field's name
and source, so a reader can trace each statement. Phrasing varies per sample, chosen from a hash of
(seed, sample_id), so reruns give identical text. Nothing is said that the facts do not hold: an
unknown side produces no side word, a missing organ no organ name, and knowledge sentences are
borrowed only when they name no side, organ, modality or intensity that the facts do not support.
"""

from __future__ import annotations

import functools
import hashlib
import re

from medtrinity_assets import vocabulary as V
from medtrinity_assets.generation.results import STATUS_OK, GenerationResult, PromptRequest
from medtrinity_assets.generation.sample_facts import Passage, SampleFacts
from medtrinity_assets.quality.consistency import Facts, score_text
from medtrinity_assets.roi.facts import RoiFacts
from medtrinity_assets.tables import ATTRIBUTES
from medtrinity_assets.vocabulary import article as _article
from medtrinity_assets.vocabulary import humanise, join_words, modality_names, needs_noun, sides_in

VERSION = "grounded-1.0"
MAX_DESCRIBED = 3  # findings described one by one; the rest are counted
NUMBER_WORDS = V.NUMBER_WORDS
_APPEARANCE_RE = re.compile(r"dens|intens|attenuat|echo|enhanc|margin|texture|homogen|heterogen|calcif|appear|well-defined|ill-defined|shape|round|oval|irregular|lobulat", re.IGNORECASE)
_ID_RE = re.compile(r"[0-9a-f]{12,}")
_UNNAMED_RE = re.compile(r"(?:label|class|value)\s*(\d+)", re.IGNORECASE)
QUOTED_CAPTION = "quote:image.caption_in"  # clause source of text quoted from the source's caption
_MOD_PREFIX_RE = re.compile(r"^On ([A-Za-z][\w -]{0,20}):\s+(\S)")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


class Chooser:
    """Deterministic choices from a hash of (seed, sample_id): cheaper than a seeded PRNG per sample."""

    __slots__ = ("_state", "_bits", "_key")

    def __init__(self, seed: int | str, sample_id: str) -> None:
        self._key = f"{seed}\0{sample_id}".encode()
        self._state = int.from_bytes(hashlib.blake2b(self._key, digest_size=32).digest(), "big")
        self._bits = 256

    def pick(self, options):
        n = len(options)
        if n == 1:
            return options[0]
        if self._bits < 8:
            self._key = hashlib.blake2b(self._key, digest_size=32).digest()
            self._state = int.from_bytes(self._key, "big")
            self._bits = 256
        value = self._state & 0xFF
        self._state >>= 8
        self._bits -= 8
        return options[value % n]


SIZE_WORDS = V.SIZE_WORDS
RELATIVE_INTENSITY = V.RELATIVE_INTENSITY_WORDS


def _contrast_number(roi: RoiFacts, modality: str) -> str:
    """'-40 HU' (CT), '+2.1 SD' (z-scores), '' when unmeasured."""
    unit = roi.contrast_unit or ("HU" if modality.upper() == "CT" else "")
    if roi.contrast is None:
        return ""
    if unit.upper() == "HU":
        return f"{roi.contrast:+.0f} HU"
    if unit.lower() == "z":
        return f"{roi.contrast:+.1f} SD"
    return f"{roi.contrast:+.1f}"


def _intensity_phrase(roi: RoiFacts, modality: str) -> str:
    """'hypodense (-40 HU relative to its surroundings)', 'brighter than the surrounding tissue (+2.1 SD)'."""
    number = _contrast_number(roi, modality)
    rel = RELATIVE_INTENSITY.get(roi.intensity)
    if rel:
        return f"{rel} the surrounding tissue" + (f" ({number})" if number else "")
    return f"{roi.intensity} ({number} relative to its surroundings)" if number else f"{roi.intensity} relative to the surrounding tissue"


_join = join_words


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _window_phrase(window: str) -> str:
    """'ct:lung(-600/1500)' -> 'lung window (level -600, width 1500 HU)'; other windows say nothing."""
    m = re.match(r"ct:([a-z_ ]+)\(([-\d.]+)/([-\d.]+)\)", window or "")
    if not m:
        return ""
    return f"{m.group(1).replace('_', ' ')} window (level {m.group(2)}, width {m.group(3)} HU)"


class Composer:
    """Facts -> clauses -> five attributes + a paragraph."""

    def __init__(self, seed: int | str = 0) -> None:
        self.seed = seed

    # one method per attribute; each returns [(text, source)]
    def modality(self, facts: SampleFacts, c: Chooser) -> list[tuple[str, str]]:
        img = facts.image
        long_name, short = modality_names(img.modality)
        code = V.shown_code(img.modality)
        view = "axial " if img.axis == "axial" else ""
        noun = "slice" if view else "image"
        if V.modality(img.modality) is not None:
            options = [short, long_name] + ([f"{long_name} ({code})"] if code and needs_noun(long_name) else [])
            named = c.pick(options)
            if not needs_noun(named):
                noun = ""
            head = f"{view}{named}{' ' + noun if noun else ''}"
        else:
            head = f"{view}medical image"
        text = c.pick([f"This is {_article(head)} {head}", f"The image is {_article(head)} {head}", f"{_cap(_article(head))} {head} is shown"])
        window = _window_phrase(img.window)
        if window:
            text += c.pick([f", displayed in {_article(window)} {window}", f", viewed with {_article(window)} {window}"])
        return [(text + ".", "image.modality" + (",image.axis" if view else "") + (",image.window" if window else ""))]

    def organ(self, facts: SampleFacts, c: Chooser) -> list[tuple[str, str]]:
        organ = humanise(facts.image.organ)
        out = []
        if organ:
            out.append((c.pick([f"It covers the {organ}.", f"The field of view includes the {organ}.", f"The scan region is the {organ}."]), "image.organ"))
        anatomy = sorted({humanise(r.label) for r in facts.anatomy if r.label and r.label != "body"})
        if anatomy:
            listed = _join(anatomy[:6])
            out.append((c.pick([f"Reference structures outlined in the image include the {listed}.", f"The {listed} {'are' if len(anatomy) > 1 else 'is'} delineated as anatomical reference."]), "rois.anatomy.label"))
        if not out:
            regions = sorted({humanise(r.region) for r in facts.findings if r.region})
            if regions:
                out.append((f"The imaged region includes the {_join(regions)}.", "rois.region"))
            else:
                out.append(("The organ is not recorded in the image metadata.", "image.organ"))
        caption = " ".join(facts.image.caption_in.split()).rstrip(".")
        if caption:  # the source's own words, quoted and attributed, never restated as a measured fact
            out.append((c.pick([f'The caption supplied with the source reads: "{caption}."',
                                f'The source describes the image as: "{caption}."']), QUOTED_CAPTION))
        return out

    def _roi_name(self, roi: RoiFacts) -> str:
        name = humanise(roi.label)
        m = _UNNAMED_RE.fullmatch(name)
        if m:  # a label value without a name in the source's label map
            return f"region labelled {m.group(1)}"
        return name or "region of interest"

    def _refer(self, roi: RoiFacts, i: int, findings: list[RoiFacts], c: Chooser) -> str:
        """'It' for a single finding, 'The cyst' when its name is unique, else 'The second cyst'."""
        if len(findings) == 1:
            return "It"
        name = self._roi_name(roi)
        same = [r for r in findings if self._roi_name(r) == name]
        if len(same) == 1:
            return f"The {name}"
        k = same.index(roi)
        return f"The {('first', 'second', 'third')[k]} {name}"

    def roi_location(self, facts: SampleFacts, findings: list[RoiFacts], c: Chooser) -> list[tuple[str, str]]:
        if not findings:
            return [(c.pick(["No region of interest is marked on this image, so the description stays at the level of the whole image.",
                             "No region of interest is marked, so no regional findings are described."]), "rois")]
        out = []
        total = len(facts.findings)
        if total > 1:
            n = NUMBER_WORDS.get(total, str(total))
            more = f"; the {NUMBER_WORDS.get(len(findings), len(findings))} largest are described" if total > len(findings) else ""
            out.append((c.pick([f"{_cap(n)} regions of interest are marked{more}.", f"There are {n} marked regions of interest{more}."]), "rois.count"))
        seen: set[str] = set()
        for _i, roi in enumerate(findings):
            name = self._roi_name(roi)
            size = SIZE_WORDS.get(roi.size_class, humanise(roi.size_class))
            sized = f"{size + ' ' if size else ''}{name}"
            subject = f"another {sized}" if name in seen else f"{_article(sized)} {sized}"
            seen.add(name)
            where = []
            src = ["label"]
            if roi.side in ("left", "right"):
                where.append(c.pick([f"on the patient's {roi.side} side", f"in the patient's {roi.side} half"]))
                src.append("side")
            elif roi.side == "midline":
                where.append("in the midline")
                src.append("side")
            if roi.region:
                where.append(c.pick([f"within the {humanise(roi.region)}", f"in the {humanise(roi.region)}"]))
                src.append("region")
            pos = []
            if roi.vertical_position:
                pos.append(f"the {roi.vertical_position} part of the image")
                src.append("vertical")
            if roi.ap_position in ("anterior", "central", "posterior"):
                ap = {"central": "centrally"}.get(roi.ap_position, roi.ap_position + "ly" if roi.ap_position.endswith("ior") else roi.ap_position)
                src.append("ap_position")
            else:
                ap = ""
            if pos or ap:
                where.append(", ".join(p for p in ([ap] if ap else []) + ([f"in {pos[0]}"] if pos else [])))
            if where:
                verb = c.pick(["is seen", "is located", "lies", "is present"])
                text = f"{_cap(subject)} {verb} {', '.join(w for w in where if w)}"
            else:
                text = f"{_cap(subject)} is marked"
            if roi.area_fraction is not None:
                pct = 100.0 * roi.area_fraction
                text += c.pick([f", covering about {pct:.1f}% of the image", f", occupying roughly {pct:.1f}% of the image area"]) if pct >= 0.1 else ", covering less than 0.1% of the image"
                src.append("area_fraction")
            if size:
                src.append("size_class")
            out.append((text.rstrip(", ") + ".", f"roi:{roi.roi_id}." + ",".join(src)))
        return out

    def texture(self, facts: SampleFacts, findings: list[RoiFacts], allowed: Facts, c: Chooser) -> list[tuple[str, str]]:
        out = []
        for i, roi in enumerate(findings):
            nouns, src = [], []
            if roi.texture:
                nouns.append(c.pick([f"{_article(roi.texture)} {roi.texture} internal texture", f"{_article(roi.texture)} {roi.texture} internal structure"]))
                src.append("texture")
            if roi.shape:
                nouns.append(c.pick([f"{_article(roi.shape)} {roi.shape} shape", f"{_article(roi.shape)} {roi.shape} outline"]))
                src.append("shape")
            if roi.margin:
                nouns.append(f"{V.MARGIN_WORDS.get(roi.margin, humanise(roi.margin))} margins")
                src.append("margin")
            if not roi.intensity and not nouns:
                continue
            who = self._refer(roi, i, findings, c)
            if roi.intensity:  # stated even when the label repeats it: the texture attribute stands alone
                text = f"{who} {c.pick(['appears', 'is'])} {_intensity_phrase(roi, facts.image.modality)}" + (f", with {_join(nouns)}" if nouns else "")
                src.insert(0, "intensity")
            else:
                text = f"{who} has {_join(nouns)}"
            out.append((text + ".", f"roi:{roi.roi_id}." + ",".join(src)))
        knowledge = self.knowledge_sentence(facts, allowed)
        if knowledge:
            passage, sentence = knowledge
            title = passage.title.strip()
            lead = c.pick([f"For reference, the retrieved knowledge{' on ' + title if title else ''} notes: ", f"Retrieved reference{' (' + title + ')' if title else ''}: "])
            pid = passage.passage_id if passage.passage_id.startswith(f"{passage.corpus}:") else f"{passage.corpus}:{passage.passage_id}"
            out.append((lead + sentence, f"passage:{pid}"))
        if not out:
            out.append(("No region-level intensity or texture measurements are available.", "rois"))
        return out

    def knowledge_sentence(self, facts: SampleFacts, allowed: Facts) -> tuple[Passage, str] | None:
        """An appearance sentence from a top passage about this image's finding, that the facts do not contradict.

        A passage counts as about the finding when its title shares a content word with a finding's
        label or the image's disease labels; generic passages (e.g. 'Normal brain MRI' for an
        unlabelled image) are not borrowed, since they would read as a statement of normality.
        """
        if facts.findings:  # what this slice shows, not every label of its volume
            about = [r.label for r in facts.findings]
            organs = set().union(*(V.organs_in(humanise(r.label)) | V.organs_in(humanise(r.region)) for r in facts.findings))
        elif facts.rois:  # ROIs were found but none is a finding: the volume's labels are not about this slice
            return None
        else:  # no ROI stage for this source: the image's own labels say what it shows
            about = [facts.image.disease, *facts.image.labels]
            organs = set(_fact_organs(facts))
        topics = _topic_words(" ".join(about))
        if not topics:
            return None
        for p in facts.passages[:3]:
            if not (_topic_words(p.title) & topics) or not V.organs_in(p.title) <= organs:
                continue  # a passage about another finding or another organ ('liver cyst' for a kidney cyst)
            s = _usable_sentence(p.text, allowed)
            if s:
                return p, s
        return None

    def relations(self, facts: SampleFacts, findings: list[RoiFacts], c: Chooser) -> list[tuple[str, str]]:
        names = {r.roi_id: self._roi_name(r) for r in facts.rois}
        out = []
        stated: set[frozenset[str]] = set()  # a distance between two findings is said once, not from both ends
        for i, roi in enumerate(findings):
            phrases = []
            for rel in roi.relations.statements():
                kind, raw_target = rel.type, rel.target
                if raw_target in names:
                    pair = frozenset((roi.roi_id, raw_target))
                    if pair in stated:
                        continue
                    stated.add(pair)
                elif _ID_RE.fullmatch(raw_target):
                    continue  # an id of a ROI this description does not know
                target = names.get(raw_target, humanise(raw_target))
                other = next((r for r in findings if r.roi_id == raw_target), None)
                if other is not None and len(findings) > 1:  # 'the second lesion', not 'the lesion', when names repeat
                    target = self._refer(other, findings.index(other), findings, c)[len("The "):]
                if not target:
                    continue
                dist_s = f"{rel.distance_mm:.0f} mm" if rel.distance_mm is not None else ""
                if kind == "inside":
                    phrases.append(c.pick([f"lies within the {target}", f"is contained in the {target}"]))
                elif kind == "adjacent":
                    phrases.append(c.pick([f"abuts the {target}", f"is adjacent to the {target}"]))
                elif kind == "overlaps":
                    phrases.append(f"overlaps the {target}")
                else:  # near
                    phrases.append(c.pick([f"is {dist_s} from the {target}", f"lies {dist_s} away from the {target}"]) if dist_s else f"is near the {target}")
            if phrases:
                out.append((f"{self._refer(roi, i, findings, c)} {_join(phrases[:4])}.", f"roi:{roi.roi_id}.relations"))
        if not out:
            if len(facts.findings) == 1:
                out.append((c.pick(["It is the only region of interest marked.", "No other region of interest is marked."]), "rois.count"))
            elif not facts.findings:
                out.append(("No relations between regions can be stated.", "rois"))
            else:
                out.append((f"{_cap(NUMBER_WORDS.get(len(facts.findings), str(len(facts.findings))))} separate regions are marked; their spatial relations are not recorded.", "rois.count"))
        return out

    def compose(self, facts: SampleFacts) -> GenerationResult:
        c = Chooser(self.seed, facts.sample_id)
        allowed = facts.scorer_facts()
        findings = sorted(facts.findings, key=lambda r: -(r.area_fraction or 0.0))[:MAX_DESCRIBED]
        per_field = {
            "modality": self.modality(facts, c),
            "organ": self.organ(facts, c),
            "roi_location": self.roi_location(facts, findings, c),
            "texture": self.texture(facts, findings, allowed, c),
            "relations": self.relations(facts, findings, c),
        }
        clauses = [{"field": f, "text": t, "source": s} for f in ATTRIBUTES for t, s in per_field[f]]
        attributes = {f: " ".join(t for t, _ in per_field[f]) for f in ATTRIBUTES}
        description = " ".join(cl["text"] for cl in clauses)
        return GenerationResult(sample_id=facts.sample_id, status=STATUS_OK, description=description,
                                attributes=attributes, clauses=clauses, attempts=1)


def _fact_organs(facts: SampleFacts) -> frozenset[str]:
    """Organs the image's facts name, a body region standing for the organs it shows."""
    img = facts.image
    m = V.modality(img.modality)
    phrases = [img.organ, img.disease, *img.labels, *(r.label for r in facts.rois), *(r.region for r in facts.rois),
               *(t for r in facts.rois for t in r.relations.organs()), m.implies_organ if m else ""]
    return frozenset().union(*(V.organs_of_phrase(p) for p in phrases if p))


@functools.lru_cache(maxsize=16384)
def _content_words(text: str) -> frozenset[str]:
    words = set()
    for w in re.findall(r"[a-z]{3,}", (text or "").lower()):
        if w not in V.GENERIC_WORDS:
            words.add(w[:-1] if w.endswith("s") and len(w) > 4 else w)  # crude plural folding: cysts -> cyst
    return frozenset(words)


@functools.lru_cache(maxsize=16384)
def _topic_words(text: str) -> frozenset[str]:
    """What a finding or a passage is about, without organ and modality words ('liver cyst' -> {cyst})."""
    out = set()
    for w in _content_words(text):
        if V.organs_in(w) or V.modalities_in(w):
            continue
        out.add(V.FINDING_SYNONYMS.get(w, w))
    return frozenset(out)


def _tidy(sentence: str) -> str:
    """'On CT: Sharply marginated ...' -> 'On CT, sharply marginated ...' (the corpus's section style)."""
    def repl(m: re.Match) -> str:
        nxt = m.group(2)
        mod = V.modality(m.group(1))
        where = mod.on_name if mod else m.group(1)
        return f"On {where}, {nxt.lower() if nxt.isupper() and not m.string[m.end(2):m.end(2) + 1].isupper() else nxt}"

    return _MOD_PREFIX_RE.sub(repl, sentence, count=1)


@functools.lru_cache(maxsize=16384)
def _sentences(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in _SENTENCE_RE.split(" ".join(text.split())) if 20 <= len(s.strip()) <= 300)


def _usable_sentence(text: str, allowed: Facts) -> str:
    for s in _sentences(text):
        if _APPEARANCE_RE.search(s) and not sides_in(s) and not score_text(s, "knowledge", allowed):
            s = _tidy(s)
            return s if s.endswith((".", "!", "?")) else s + "."
    return ""


class GroundedBackend:
    """Backend interface over :class:`Composer` (no model, no network, no image bytes needed)."""

    name = "grounded"
    needs_image = False
    needs_prompt = False  # composes from the facts, not from the rendered prompt

    def __init__(self, seed: int | str = 0) -> None:
        self.seed = seed
        self.model = f"composer(seed={seed})"
        self.version = VERSION
        self._composer = Composer(seed)

    def generate(self, batch: list[PromptRequest]) -> list[GenerationResult]:
        return [self.compose(r.facts) for r in batch]

    def compose(self, facts: SampleFacts) -> GenerationResult:
        return self._composer.compose(facts)

    def close(self) -> None:
        pass
