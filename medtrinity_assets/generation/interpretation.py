"""Knowledge as interpretation: one hedged clause that ties a finding's measurements to a retrieved passage.

A passage is used for a finding only when it is about that finding (or, for a generic 'lesion', about a
focal lesion) in that organ and for that modality (the retrieval query's own test). The measured
features the passage's appearance text also names -- absolute CT attenuation, the contrast with the
surrounding tissue, texture, margin, shape -- become the evidence of the clause, with their numbers:

    "Fluid attenuation (mean 6 HU), a homogeneous interior and a well-defined margin fit a liver cyst;
     the possibilities include simple liver cyst, cystic metastasis and hydatid cyst."

The finding is only ever named by its own label. A passage title more specific than the label (a
'Hepatocellular carcinoma' passage for a 'liver tumour') and the passage's differential are offered as
possibilities, never as the diagnosis; a generic label ('lesion') gets a differential only.
Nothing is copied from the passage: the clause is built from the finding's facts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from medtrinity_assets import vocabulary as V
from medtrinity_assets.generation.sample_facts import ImageFacts, Passage
from medtrinity_assets.knowledge.queries import Query
from medtrinity_assets.roi.facts import RoiFacts

MAX_POSSIBILITIES = 3
MAX_EVIDENCE = 3  # measured features cited in one clause
ATTENUATION_WORDS = {"soft_tissue": "soft-tissue", "ground_glass": "ground-glass"}

# measured feature -> words in an appearance text that describe the same thing
_EVIDENCE: dict[str, str] = {
    "att:fluid": r"water|fluid|0-20 hu|near-water|cystic|anechoic",
    "att:soft_tissue": r"soft[- ]tissue|solid",
    "att:fat": r"\bfat",
    "att:calcified": r"calcif",
    "att:ground_glass": r"ground[- ]glass",
    "att:air": r"\bair\b|\bgas\b|cavit",
    "int:hypo": r"hypodense|hypoattenuat|low[- ]attenuation|darker|washout|hypointens|low signal|\bdark\b|hypoechoic|anechoic|lucen",
    "int:hyper": r"hyperdense|hyperattenuat|high[- ]attenuation|high density|brighter|hyperenhanc|enhanc|hyperintens|\bbright\b|high signal|hyperechoic|echogenic|opaci",
    "int:iso": r"isodense|isointens|isoechoic|similar",
    "tex:homogeneous": r"homogeneous|uniform",
    "tex:heterogeneous": r"heterogeneous|necros|mixed|inhomogeneous",
    "mar:well_defined": r"sharp|well[- ]defined|well[- ]circumscribed|marginated|smooth|thin wall|hairline wall|imperceptible wall",
    "mar:ill_defined": r"ill[- ]defined|infiltrat|spiculat|indistinct|irregular margin|poorly defined",
    "shp:round": r"round|spherical|oval",
    "shp:oval": r"oval|ovoid|round",
    "shp:lobulated": r"lobulat",
    "shp:irregular": r"irregular|spiculat",
}
_EVIDENCE_RE = {k: re.compile(v, re.IGNORECASE) for k, v in _EVIDENCE.items()}
# a measured feature the passage describes the opposite of: the passage is about something else
# (the physical measurements only: 'large tumours are heterogeneous' does not rule out a small homogeneous one)
_OPPOSITE = {"att:fluid": ("att:soft_tissue", "att:fat", "att:calcified"), "att:soft_tissue": ("att:fluid",),
             "att:fat": ("att:fluid", "att:soft_tissue"), "int:hypo": ("int:hyper",),
             # water density / anechoic is darker than any solid organ: a brighter finding is not that entity
             "int:hyper": ("int:hypo", "att:fluid")}
_NEGATED = re.compile(r"\b(?:no|without|not|absent)\s+[\w-]+(?:\s+[\w-]+)?|\bnon-?[\w-]+", re.IGNORECASE)


def _said(key: str, appearance: str) -> bool:
    return bool(_EVIDENCE_RE[key].search(appearance))


def _fits(features: list[tuple[str, str]], appearance: str, one_entity: bool) -> tuple[list[tuple[str, str]], bool]:
    """(the measured features the appearance text names, whether it describes the opposite of any of them --
    'water density' for a soft-tissue finding -- without also naming the feature). Only an entry about one
    entity can be contradicted: a differential entry ('focal splenic lesion': cysts are water-density, lymphoma
    hypodense nodules) describes several. Negated phrases ('no enhancement') name nothing."""
    text = _NEGATED.sub(" ", appearance)
    cited = [(k, phrase) for k, phrase in features if _said(k, text)]
    contradicted = one_entity and any(not _said(k, text) and any(_said(o, text) for o in _OPPOSITE.get(k, ()))
                                      for k, _ in features)
    return cited, contradicted


@dataclass(frozen=True)
class Interpretation:
    text: str
    passage: Passage
    features: tuple[str, ...]  # the evidence keys the clause cites


def _intensity_prefix(roi: RoiFacts) -> str:
    i = roi.intensity.lower()
    for p in ("hyper", "hypo", "iso"):
        if i.startswith(p):
            return p
    return V.RELATIVE_INTENSITY.get(i, "")


def measured_features(roi: RoiFacts, image: ImageFacts, surround: str) -> list[tuple[str, str]]:
    """(evidence key, phrase with its number) of every measured appearance feature of a finding."""
    out = []
    if roi.attenuation and roi.mean_value is not None:
        out.append((f"att:{roi.attenuation}", f"{attenuation_word(roi.attenuation)} attenuation (mean {roi.mean_value:.0f} HU)"))
    prefix = _intensity_prefix(roi)
    if prefix and not (roi.attenuation and surround == "aerated lung"):  # against air, the contrast says nothing
        out.append((f"int:{prefix}", contrast_phrase(roi, image, surround)))
    if roi.texture:
        out.append((f"tex:{roi.texture}", f"a {roi.texture} interior"))
    if roi.margin in V.MARGIN_WORDS:
        out.append((f"mar:{roi.margin}", f"a {V.MARGIN_WORDS[roi.margin]} margin"))
    if roi.shape:
        out.append((f"shp:{roi.shape}", f"a {roi.shape} shape"))
    return out


def attenuation_word(attenuation: str) -> str:
    return ATTENUATION_WORDS.get(attenuation, V.humanise(attenuation))


def contrast_phrase(roi: RoiFacts, image: ImageFacts, surround: str) -> str:
    """'lower attenuation than the liver (-54 HU)', 'higher signal than the brain (contrast-to-noise 3.1)'."""
    prefix = _intensity_prefix(roi)
    than = f" than the {surround}" if surround else " than the surrounding tissue"
    m = V.modality_class(image.modality)
    if roi.contrast_unit == "HU" and roi.contrast is not None:
        word = {"hyper": "higher attenuation", "hypo": "lower attenuation", "iso": "similar attenuation"}[prefix]
        return f"{word}{than} ({roi.contrast:+.0f} HU)" if prefix != "iso" else f"attenuation similar to the {surround or 'surrounding tissue'}"
    word = {"MR": {"hyper": "higher signal", "hypo": "lower signal", "iso": "similar signal"},
            "US": {"hyper": "higher echogenicity", "hypo": "lower echogenicity", "iso": "similar echogenicity"},
            }.get(m, {"hyper": "brighter", "hypo": "darker", "iso": "similar brightness"})[prefix]
    cnr = f" (contrast-to-noise ratio {abs(roi.contrast):.1f})" if roi.contrast is not None and prefix != "iso" else ""
    if prefix == "iso":
        return f"{word} to the {surround or 'surrounding tissue'}"
    return f"{word}{than}{cnr}"


def _appearance(passage: Passage, image: ImageFacts) -> str:
    """The passage's appearance text for this image's modality (core corpus), else its whole text."""
    appearance = passage.facts.get("appearance") or {}
    cls = V.modality_class(image.modality)
    for key, text in appearance.items():
        if V.modality_class(key) == cls:
            return str(text)
    return "" if appearance else passage.text


def _named(text: str) -> frozenset[str]:
    """The words that say which finding a name is, as written (organ, modality and generic words left out):
    'Hepatocellular carcinoma' -> {carcinoma}; 'liver tumour' -> {tumour}; 'Focal splenic lesion' -> {}."""
    return frozenset(w for w in V.content_words(text) if not V.organs_in(w) and not V.modalities_in(w))


def more_specific(title: str, label: str) -> bool:
    """A passage title names a kind of the labelled finding ('Simple liver cyst' for 'liver cyst',
    'Hepatocellular carcinoma' for 'liver tumour'), not the finding itself ('Pulmonary nodule' for 'lung nodule')."""
    return not _named(title) <= _named(label)


def _possibilities(passage: Passage, label: str, title_is_more_specific: bool) -> list[str]:
    """What else the finding may be: the passage's title when it is more specific than the label, then its
    differential; never the label's own finding again ('liver cysts' for a liver cyst)."""
    structured = "differential" in passage.facts  # a corpus entry about one finding (a free-text title is no diagnosis)
    items = ([passage.title.strip()] if title_is_more_specific and structured else []) + \
        [str(d).strip() for d in passage.facts.get("differential") or ()]
    out: list[str] = []
    for item in items:
        name = item if re.match(r"^[A-Z]{2,}", item) else item[:1].lower() + item[1:]
        if not item or name.lower() == label.lower() or not more_specific(item, label) or name in out:
            continue
        out.append(name)
        if len(out) == MAX_POSSIBILITIES:
            break
    return out


def _either(items: list[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def roi_query(roi: RoiFacts, image: ImageFacts) -> Query:
    """The retrieval query's constraints for one finding (organ, modality, finding) -- without the text."""
    label = V.humanise(roi.label)
    organ = next(iter(o for o, _ in V.organ_mentions(V.humanise(roi.region)) if roi.region.lower() not in V.TISSUE_CLASSES), "") or \
        next(iter(o for o, _ in V.organ_mentions(label)), "") or next(iter(o for o, _ in V.organ_mentions(image.organ)), "")
    topic = V.topic_words(label)
    return Query("", organ, V.modality_class(image.modality), topic, V.names_focal_finding(label) or not topic)


def interpret(roi: RoiFacts, image: ImageFacts, passages: Sequence[Passage], surround: str, choose) -> Interpretation | None:
    """The interpretive clause of one finding, from the first passage about it whose appearance text names
    at least one of its measured features; ``choose`` picks among phrasings (deterministic per sample)."""
    label = V.humanise(roi.label)
    if not label or re.fullmatch(r"(?:label|class|value)\s*\d+", label, re.IGNORECASE):
        return None
    query = roi_query(roi, image)
    features = measured_features(roi, image, surround)
    # entries with an appearance per modality first: they say what this finding looks like on this image kind
    for p in sorted(passages, key=lambda x: "appearance" not in x.facts):
        if not query.accepts(p.title, p.text, p.facts):
            continue
        appearance = _appearance(p, image)
        cited, contradicted = _fits(features, appearance, bool(_named(p.title))) if appearance else ([], False)
        if not cited or contradicted:
            continue
        label_topic = V.topic_words(label)
        possibilities = _possibilities(p, label, more_specific(p.title, label))
        cited = cited[:MAX_EVIDENCE]
        phrases = [phrase for _, phrase in cited]
        if len(phrases) > 2 and choose([True, False]):  # vary the order of the supporting features
            phrases = [phrases[0], phrases[2], phrases[1]]
        evidence = V.join_words(phrases)
        if not label_topic:  # a generic label: a differential, never a diagnosis
            if not query.organ or query.organ in V.REGIONS:
                return None  # a lesion somewhere in the abdomen has no differential worth a sentence
            if not possibilities:
                continue  # a passage that only restates the label offers no interpretation
            text = choose([f"For {V.with_article(label)} with {evidence}, the differential includes {V.join_words(possibilities)}.",
                           f"{V.with_article(label)[:1].upper() + V.with_article(label)[1:]} with {evidence} may represent "
                           f"{_either(possibilities)}.",
                           f"In {V.with_article(label)}, {evidence} raise the possibility of {V.join_words(possibilities)}."
                           if len(cited) > 1 else
                           f"In {V.with_article(label)}, {evidence} raises the possibility of {V.join_words(possibilities)}."])
        else:
            verb = choose(["fit", "are in keeping with", "are compatible with"]) if len(cited) > 1 else \
                choose(["fits", "is in keeping with", "is compatible with"])
            lead = choose(["", "Together, ", "Taken together, "]) if len(cited) > 1 else ""
            text = f"{lead}{evidence[:1].lower() + evidence[1:] if lead else evidence[:1].upper() + evidence[1:]} {verb} {V.with_article(label)}"
            if possibilities:
                text += choose([f"; the possibilities include {V.join_words(possibilities)}",
                                f"; the differential includes {V.join_words(possibilities)}"])
            text += "."
        return Interpretation(text, p, tuple(k for k, _ in cited))
    return None
