"""The project's medical words, in one place: modalities, organs and body regions, findings, size and
intensity words, negations, numbers, articles.

Every text the pipeline writes or reads is worded from here: coarse captions, the grounded composer,
the retrieval queries, the consistency scorer (the generator's guard and the blocking gate), VQA
questions and the dataset card. A new source with another modality or organ is one edit in this file.

Three kinds of entries:
- *codes* are what tables hold (DICOM ``Modality`` values and the readers' own spellings); each maps to
  one modality class (``modality_class``);
- *terms* are what free text says (lower case; multi-word terms match as phrases, short ones on word
  boundaries); ``modalities_in`` / ``organs_in`` / ``sides_in`` find them;
- *names* are what the project writes (``Modality.name`` etc.), with the article rules of ``article``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# ---- modalities ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Modality:
    """One imaging modality class and every way the project names it."""

    code: str  # the class: CT MR XR MG US PET NM XA HISTO FUNDUS DERM ENDO OCT
    name: str  # long name in running text ("computed tomography"); a noun follows unless it ends in one
    short: str  # short name in running text ("CT", "MRI", "X-ray")
    qa_name: str  # the answer to "which modality is this?" (VQA), as VQA-RAD spells it
    codes: tuple[str, ...]  # table codes of this class (DICOM Modality values and reader spellings)
    terms: tuple[str, ...]  # free-text words that name it (lower case)
    query: str  # retrieval words: how a knowledge corpus names images of this kind
    on_name: str  # "On <on_name>, ..." for knowledge about this kind of image
    compatible: frozenset[str] = frozenset()  # classes a text about this image may also name
    implies_organ: str = ""  # organ every image of this kind shows (a fundus photograph shows the eye)


MODALITIES: tuple[Modality, ...] = (
    Modality("CT", "computed tomography", "CT", "CT", ("CT",),
             ("ct", "computed tomography", "cect", "ncct", "cta", "hounsfield"), "CT", "CT", frozenset({"PET"})),
    Modality("MR", "magnetic resonance", "MRI", "MRI", ("MR", "MRI"),
             ("mri", "mr", "magnetic resonance", "t1-weighted", "t2-weighted", "t1 weighted", "t2 weighted", "flair"),
             "MRI", "MRI"),
    Modality("XR", "radiograph", "X-ray", "X-ray", ("CR", "DX", "DR", "RG", "XR", "X-RAY", "XRAY"),
             ("x-ray", "xray", "x ray", "radiograph", "radiographs", "radiography", "radiographic", "plain film"),
             "radiograph X-ray", "radiographs", frozenset({"MG", "XA"})),
    Modality("MG", "mammogram", "mammogram", "mammography", ("MG", "MAMMOGRAPHY"),
             ("mammogram", "mammograms", "mammography", "mammographic"), "mammogram", "mammography",
             frozenset({"XR"}), implies_organ="breast"),
    Modality("US", "ultrasound image", "ultrasound", "ultrasound", ("US", "ULTRASOUND"),
             ("ultrasound", "sonography", "sonographic", "sonogram", "ultrasonography", "ultrasonographic",
              "echography", "echogenic", "echogenicity"), "ultrasound", "ultrasound"),
    Modality("PET", "positron emission tomography", "PET", "PET", ("PT", "PET"),
             ("pet", "positron emission"), "PET", "PET", frozenset({"CT", "NM"})),
    Modality("NM", "nuclear medicine scan", "scintigraphy", "nuclear medicine", ("NM",),
             ("scintigraphy", "spect", "nuclear medicine"), "nuclear medicine scan", "scintigraphy", frozenset({"PET"})),
    Modality("XA", "X-ray angiogram", "angiogram", "angiography", ("XA",),
             ("angiography", "angiogram"), "angiography", "angiography", frozenset({"XR"})),
    Modality("HISTO", "histopathology image", "histology slide", "histopathology",
             ("HISTO", "HISTOLOGY", "HISTOPATHOLOGY", "PATHOLOGY", "SM", "IHC", "WSI"),
             ("histopathology", "histopathological", "histology", "histological", "h&e", "haematoxylin",
              "hematoxylin", "immunohistochemistry", "immunohistochemical", "micrograph", "whole-slide"),
             "histology tissue section", "histology"),
    Modality("FUNDUS", "colour fundus photograph", "fundus photograph", "fundus photograph", ("FUNDUS", "OP", "CFP"),
             ("fundus", "fundoscopy", "fundoscopic", "fundus photograph", "retinal photograph"),
             "fundus photograph of the retina", "fundus photographs", implies_organ="eye"),
    Modality("DERM", "dermoscopy image", "dermoscopy image", "dermoscopy", ("DERM", "DERMOSCOPY", "DERMATOLOGY"),
             ("dermoscopy", "dermoscopic", "dermatoscopy", "dermatoscopic"), "dermoscopy of a skin lesion",
             "dermoscopy", implies_organ="skin"),
    Modality("ENDO", "endoscopy image", "endoscopy image", "endoscopy", ("ENDO", "ENDOSCOPY", "ES"),
             ("endoscopy", "endoscopic", "colonoscopy"), "endoscopy", "endoscopy"),
    Modality("OCT", "optical coherence tomography", "OCT", "OCT", ("OCT", "OPT"),
             ("optical coherence tomography",), "optical coherence tomography of the retina",
             "optical coherence tomography", implies_organ="eye"),
)
MODALITY_BY_CLASS: dict[str, Modality] = {m.code: m for m in MODALITIES}
_MODALITY_BY_CODE: dict[str, Modality] = {c: m for m in MODALITIES for c in m.codes}
GENERIC_MODALITY_NAME = "medical image"
# DICOM codes a caption spells out after the long name: "computed tomography (CT)"
SHOWN_CODES = frozenset({"CT", "MR", "PT", "US", "MG", "CR", "DX", "XA", "NM", "OCT"})
# other spellings of the same codes, folded before a code is shown ("X-RAY" is shown as CR)
_CODE_SPELLINGS = {"XRAY": "CR", "X-RAY": "CR", "PET": "PT", "MAMMOGRAPHY": "MG", "ULTRASOUND": "US"}
# image kinds whose pixel values carry no physical unit even when the class could (photographs, slides)
PHOTOGRAPHIC = frozenset({"HISTO", "FUNDUS", "DERM", "ENDO"})


def modality(code: str | None) -> Modality | None:
    """The modality class of a table code ('CR' -> X-ray), or None for an unknown or empty code."""
    return _MODALITY_BY_CODE.get((code or "").strip().upper())


def modality_class(code: str | None) -> str:
    """'CR' -> 'XR', 'PT' -> 'PET', unknown -> ''."""
    m = modality(code)
    return m.code if m else ""


def shown_code(code: str | None) -> str:
    """The DICOM code a caption may spell out after the long name ('X-RAY' -> 'CR'), or ''."""
    c = (code or "").strip().upper()
    c = _CODE_SPELLINGS.get(c, c)
    return c if c in SHOWN_CODES else ""


def modality_names(code: str | None) -> tuple[str, str]:
    """(long, short) name of a table code; unknown codes read as a generic 'medical image'."""
    m = modality(code)
    return (m.name, m.short) if m else (GENERIC_MODALITY_NAME, "image")


_IMAGE_NOUNS = ("image", "photograph", "slide", "mammogram", "radiograph", "angiogram", "scan", "scintigraphy")


def needs_noun(name: str) -> bool:
    """'computed tomography' needs a noun after it ('... slice'); 'radiograph' does not."""
    return not name.endswith(_IMAGE_NOUNS)


# ---- organs and body regions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Organ:
    name: str  # canonical name, as the project writes it
    regions: tuple[str, ...]  # body regions that show it ('' entries never); bone is in every trunk region
    synonyms: tuple[str, ...] = ()  # other words that name it in free text (lower case)
    part_of: str = ""  # the organ it is part of (retina -> eye), for "is this passage about this organ"


_TRUNK = ("head", "neck", "chest", "abdomen", "pelvis", "spine", "limb")
ORGANS: tuple[Organ, ...] = (
    Organ("brain", ("head",), ("cerebral", "intracranial", "cerebrum", "hemisphere", "hemispheres", "hemispheric")),
    Organ("cerebellum", ("head",), ("cerebellar",), part_of="brain"),
    Organ("skull", ("head",), ("cranium", "cranial")),
    Organ("head", ("head",)),
    Organ("eye", ("eye",), ("ocular",)),
    Organ("retina", ("eye",), ("retinal",), part_of="eye"),
    Organ("optic disc", ("eye",), ("optic disk",), part_of="eye"),
    Organ("macula", ("eye",), ("macular",), part_of="eye"),
    Organ("thyroid", ("neck",)),
    Organ("neck", ("neck",)),
    Organ("lung", ("chest",), ("lungs", "pulmonary", "bronchus", "bronchi", "bronchial", "alveolar", "alveoli")),
    Organ("heart", ("chest",), ("cardiac",)),
    Organ("mediastinum", ("chest",), ("mediastinal",)),
    Organ("trachea", ("chest",), ("tracheal",)),
    Organ("pleura", ("chest",), ("pleural",), part_of="lung"),
    Organ("chest", ("chest",), ("thorax", "thoracic")),
    Organ("oesophagus", ("chest",), ("esophagus", "oesophageal", "esophageal")),
    Organ("breast", ("breast",), ("breasts", "mammary")),
    Organ("liver", ("abdomen",), ("hepatic", "hepatocellular", "hepatobiliary", "intrahepatic")),
    Organ("kidney", ("abdomen",), ("kidneys", "renal")),
    Organ("spleen", ("abdomen",), ("splenic",)),
    Organ("pancreas", ("abdomen",), ("pancreatic",)),
    Organ("stomach", ("abdomen",), ("gastric",)),
    Organ("gallbladder", ("abdomen",)),
    Organ("bowel", ("abdomen",), ("intestine", "intestinal")),
    Organ("colon", ("abdomen",), ("colonic", "colorectal")),
    Organ("adrenal", ("abdomen",)),
    Organ("abdomen", ("abdomen",), ("abdominal",)),
    Organ("bladder", ("pelvis",)),
    Organ("prostate", ("pelvis",), ("prostatic",)),
    Organ("uterus", ("pelvis",), ("uterine",)),
    Organ("ovary", ("pelvis",), ("ovarian",)),
    Organ("rectum", ("pelvis",), ("rectal",), part_of="colon"),
    Organ("pelvis", ("pelvis",), ("pelvic",)),
    Organ("hip", ("pelvis",)),
    Organ("spine", ("spine",), ("spinal",)),
    Organ("vertebra", ("spine",), ("vertebrae", "vertebral"), part_of="bone"),
    Organ("bone", _TRUNK, ("bones", "osseous", "skeletal")),
    Organ("knee", ("limb",)),
    Organ("shoulder", ("limb",)),
    Organ("hand", ("limb",)),
    Organ("foot", ("limb",)),
    Organ("extremity", ("limb",), ("extremities", "limb", "arm", "leg", "wrist", "ankle", "elbow")),
    Organ("skin", ("skin",), ("cutaneous", "dermal", "epidermal", "epidermis")),
    Organ("joint", ("limb", "pelvis", "spine"), ("joints", "articular")),
    Organ("lymph node", _TRUNK, ("lymph nodes", "nodal")),
)
ORGAN_BY_NAME: dict[str, Organ] = {o.name: o for o in ORGANS}
# every free-text word -> canonical organ
ORGAN_SYNONYMS: dict[str, str] = {w: o.name for o in ORGANS for w in (o.name, *o.synonyms)}
# canonical organ -> the body region it places an image in (organs seen in every region, like bone, place none)
ORGAN_REGION: dict[str, str] = {o.name: o.regions[0] for o in ORGANS if len(o.regions) == 1}
# body regions that may show each other's organs at their border (the lung bases on an abdominal CT ...)
REGION_ADJACENT: dict[str, frozenset[str]] = {
    "head": frozenset({"neck", "eye"}), "eye": frozenset({"head"}), "neck": frozenset({"head", "chest", "spine"}),
    "chest": frozenset({"neck", "abdomen", "breast", "spine"}), "breast": frozenset({"chest"}),
    "abdomen": frozenset({"chest", "pelvis", "spine"}), "pelvis": frozenset({"abdomen", "spine", "limb"}),
    "spine": frozenset({"neck", "chest", "abdomen", "pelvis"}), "limb": frozenset({"pelvis"}),
    "skin": frozenset(),
}
REGIONS = frozenset(REGION_ADJACENT)


def organ_regions(organ: str) -> tuple[str, ...]:
    o = ORGAN_BY_NAME.get(organ)
    return o.regions if o else ()


def organ_family(organ: str) -> str:
    """The organ a part belongs to (retina -> eye, rectum -> colon), else the organ itself."""
    o = ORGAN_BY_NAME.get(organ)
    return o.part_of if o and o.part_of else organ


def organs_of_region(region: str) -> frozenset[str]:
    """Every organ a body region shows ('abdomen' -> liver, kidney, ..., bone)."""
    return frozenset(o.name for o in ORGANS if region in o.regions)


# ---- findings --------------------------------------------------------------------------------------

# words that claim something is abnormal
FINDING_TERMS: tuple[str, ...] = (
    "lesion", "lesions", "tumour", "tumours", "tumor", "tumors", "mass", "masses", "nodule", "nodules",
    "cyst", "cysts", "metastasis", "metastases", "haemorrhage", "hemorrhage", "fracture", "fractures",
    "effusion", "abscess", "carcinoma", "cancer", "infarct", "infarction", "pneumothorax",
    "consolidation", "calcification", "calcifications", "polyp", "polyps", "aneurysm", "neoplasm",
)
# ROI labels that name normal anatomy or background rather than a finding
NORMAL_LABELS: frozenset[str] = frozenset(
    {"body", "background", "normal", "bone", "air", "fat", "tissue", "soft tissue", "vessel", "vessels"}
)
# anatomy labels that are tissue classes or frames, not organs: a finding in them is not located by them
TISSUE_CLASSES: frozenset[str] = frozenset({"body", "background", "air", "fat", "tissue", "soft tissue", "field of view"})
# image-level labels that say "no finding" (a caption never reads them as a disease)
NON_FINDING_LABELS: frozenset[str] = frozenset({"", "none", "normal", "healthy", "unknown", "background", "no finding",
                                                "no_finding"})
# finding words that mean the same for choosing knowledge (a passage on "carcinoma" is about a "tumour")
FINDING_SYNONYMS: dict[str, str] = {
    "tumor": "tumour", "neoplasm": "tumour", "carcinoma": "tumour", "metastasi": "tumour", "metastase": "tumour",
    "mass": "tumour", "cancer": "tumour", "malignancy": "tumour", "hepatocellular": "tumour",
    "adenocarcinoma": "tumour", "glioblastoma": "glioma", "haemorrhage": "hemorrhage", "bleed": "hemorrhage",
    "cystic": "cyst",
}
# words that say nothing about which finding a text is about
GENERIC_WORDS: frozenset[str] = frozenset("""a an the of and or in on with without normal abnormal finding findings
    lesion lesions region regions image images scan slice label labelled class unknown other none no left right
    hyperdense hypodense isodense hyperintense hypointense isointense hyperechoic hypoechoic isoechoic brighter
    darker similar homogeneous heterogeneous small medium large focal multiple single solitary""".split())
# what a focal finding may be called: a generic 'lesion' label is about any of these, not a diffuse disease
FOCAL_TOPICS: frozenset[str] = frozenset({"lesion", "focal", "tumour", "cyst", "nodule", "mass", "abscess",
                                          "haemangioma", "hemangioma", "metastasi", "adenoma", "carcinoma"})

# ---- sizes, intensities, margins, counts, negations ------------------------------------------------

SIZE_CLASSES = ("small", "medium", "large", "very_large")
# size class (as the ROI table stores it) -> the words a description uses
SIZE_WORDS: dict[str, str] = {"small": "small", "medium": "medium-sized", "large": "large", "very_large": "very large"}
# words in free text -> the size class they claim ("very large" reads as large)
SIZE_CLASS_OF_WORD: dict[str, str] = {
    "tiny": "small", "small": "small", "minute": "small", "punctate": "small", "little": "small",
    "medium": "medium", "medium-sized": "medium", "moderate-sized": "medium", "moderately sized": "medium",
    "intermediate-sized": "medium", "mid-sized": "medium",
    "large": "large", "big": "large", "huge": "large", "extensive": "large", "bulky": "large",
    "sizeable": "large", "sizable": "large",
}
# phrases where a size word names anatomy, not the size of a region
SIZE_EXCEPTIONS: tuple[str, ...] = (
    "small bowel", "small intestine", "large bowel", "large intestine", "contrast medium",
    "medium vessel", "large vessel", "small vessel",
)
# intensity classes the ROI table stores, by the prefix a text uses for them
INTENSITY_PREFIXES = ("hyper", "hypo", "iso")
INTENSITY_STEMS: tuple[str, ...] = ("dense", "intense", "echoic", "attenuating", "attenuation", "density", "intensity")
RELATIVE_INTENSITY: dict[str, str] = {"brighter": "hyper", "darker": "hypo", "similar": "iso"}
RELATIVE_INTENSITY_WORDS: dict[str, str] = {"brighter": "brighter than", "darker": "darker than",
                                            "similar": "similar in intensity to"}
MARGIN_WORDS: dict[str, str] = {"well_defined": "well-defined", "ill_defined": "ill-defined"}

NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven",
                                8: "eight", 9: "nine", 10: "ten"}
# count words in free text -> the number they claim
COUNT_WORDS: dict[str, int] = {
    "a single": 1, "single": 1, "solitary": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "a pair of": 2, "both": 2,
}
COUNT_NOUNS: tuple[str, ...] = (
    "lesions", "lesion", "regions of interest", "region of interest", "rois", "roi", "nodules", "nodule",
    "masses", "mass", "tumours", "tumour", "tumors", "tumor", "foci", "focus", "findings", "finding",
    "regions", "region", "components", "component", "cysts", "cyst",
)
ORDINALS = ("first", "second", "third", "fourth", "fifth")
NEGATIONS: tuple[str, ...] = ("no", "without", "absence of", "absent", "not", "free of", "negative for", "rule out",
                              "rules out", "neither", "nor")
SIDES = ("left", "right")

# ---- pipeline language -----------------------------------------------------------------------------

# words that describe how the dataset was made, never the image: no training target may hold them
PIPELINE_TERMS: tuple[str, ...] = (
    "marked", "unmarked", "outlined", "delineated", "annotated", "annotation", "annotations", "segmented",
    "segmentation", "mask", "masks", "region of interest", "regions of interest", "roi", "rois",
    "retrieved", "retrieval", "reference structure", "reference structures", "metadata", "not recorded",
    "can be stated", "cannot be stated", "measurements are available", "measurements are not available",
    "is not available", "are not available", "knowledge", "the source", "supplied with", "caption",
    "labelled", "labeled", "label", "labels", "pipeline", "dataset", "overlay",
)
PIPELINE_RE = re.compile(r"(?<![A-Za-z])(" + "|".join(sorted(map(re.escape, PIPELINE_TERMS), key=len, reverse=True))
                         + r")(?![A-Za-z])", re.IGNORECASE)

# ---- words -----------------------------------------------------------------------------------------


def humanise(label: str | None) -> str:
    """'left_kidney_cyst' -> 'left kidney cyst' (labels are machine names in the tables)."""
    return " ".join((label or "").replace("_", " ").replace("-", " ").split())


def article(word: str) -> str:
    """'a' or 'an' before ``word``: by sound for acronyms (an MRI, a CT, an X-ray), by letter otherwise."""
    first = (word.split() or [""])[0]
    if first[:2].upper() == "X-":  # an X-ray
        return "an"
    number = re.match(r"\d+", first)
    if number:  # read aloud: an 8 mm, an 11 mm, an 18 mm, an 80 mm; a 12 mm
        digits = number.group(0)
        return "an" if digits.startswith("8") or digits in ("11", "18") or (len(digits) in (4, 5) and digits[:2] in ("11", "18") and len(digits) % 3 == 2) else "a"
    if len(first) > 1 and first.replace("-", "").isupper():  # acronyms are read letter by letter
        return "an" if first[0] in "AEFHILMNORSX" else "a"
    return "an" if first[:1].lower() in "aeiou" else "a"


def with_article(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def join_words(items) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# ---- finding words in free text --------------------------------------------------------------------


def term_pattern(terms) -> re.Pattern[str]:
    """One pattern for many lower-case terms, longest first, on word boundaries."""
    return re.compile(r"(?<![a-z0-9&])(" + "|".join(sorted(map(re.escape, terms), key=len, reverse=True))
                      + r")(?![a-z0-9&])")


MODALITY_TERMS: dict[str, tuple[str, ...]] = {m.code: m.terms for m in MODALITIES}
_MODALITY_OF_TERM: dict[str, str] = {t: m.code for m in MODALITIES for t in m.terms}
_MODALITY_RE = term_pattern(_MODALITY_OF_TERM)
_ORGAN_RE = term_pattern(ORGAN_SYNONYMS)
_SIDE_RE = re.compile(r"\b(left|right|bilateral(?:ly)?|both sides)\b", re.IGNORECASE)


def modality_mentions(text: str) -> list[tuple[str, str, int]]:
    """(modality class, the term, position) of every modality word in ``text``."""
    return [(_MODALITY_OF_TERM[m.group(1)], m.group(1), m.start()) for m in _MODALITY_RE.finditer(text.lower())]


def modalities_in(text: str) -> set[str]:
    return {cls for cls, _, _ in modality_mentions(text)}


def organ_mentions(text: str) -> list[tuple[str, int]]:
    """(canonical organ, position) of every organ word, in one pass over the text."""
    return [(ORGAN_SYNONYMS[m.group(1)], m.start()) for m in _ORGAN_RE.finditer(text.lower())]


@functools.lru_cache(maxsize=16384)
def organs_in(text: str) -> frozenset[str]:
    return frozenset(o for o, _ in organ_mentions(text))


@functools.lru_cache(maxsize=4096)
def organs_of_phrase(phrase: str) -> frozenset[str]:
    """Organs a label or region names, a body region standing for every organ it shows ('abdomen' -> liver ...)."""
    found = set(organs_in(humanise(phrase)))
    for organ in list(found):
        if organ in REGIONS:
            found |= organs_of_region(organ)
    return frozenset(found)


@functools.lru_cache(maxsize=16384)
def content_words(text: str) -> frozenset[str]:
    """Lower-case words of 3+ letters, crude plural folding (cysts -> cyst), generic words dropped."""
    words = set()
    for w in re.findall(r"[a-z]{3,}", (text or "").lower()):
        if w not in GENERIC_WORDS:
            words.add(w[:-1] if w.endswith("s") and len(w) > 4 else w)
    return frozenset(words)


@functools.lru_cache(maxsize=16384)
def topic_words(text: str) -> frozenset[str]:
    """What a finding or a passage is about, without organ, modality and appearance words
    ('hyperdense liver cyst' -> {cyst}; 'Hepatocellular carcinoma' -> {tumour})."""
    out = set()
    for w in content_words(text):
        if organs_in(w) or modalities_in(w):
            continue
        out.add(FINDING_SYNONYMS.get(w, w))
    return frozenset(out)


def names_focal_finding(text: str) -> bool:
    """True when a label speaks of a focal finding ('lesion', 'nodule', 'tumour' ...)."""
    words = {w[:-1] if w.endswith("s") and len(w) > 4 else w for w in re.findall(r"[a-z]{3,}", (text or "").lower())}
    return bool({FINDING_SYNONYMS.get(w, w) for w in words} & FOCAL_TOPICS)


def sides_in(text: str) -> set[str]:
    """'left' / 'right' / 'bilateral' named in ``text``."""
    out = set()
    for m in _SIDE_RE.finditer(text):
        w = m.group(1).lower()
        out.add(w if w in SIDES else "bilateral")
    return out
