"""Words the consistency scorer recognises: modalities, organs with their body region, findings,
size and intensity classes.

Kept apart from the scorer so that a new source (another modality, another organ) is one edit here.
Terms are lower case; multi-word terms are matched as phrases, short tokens on word boundaries.
"""

from __future__ import annotations

# modality class -> terms that name it in free text
MODALITY_TERMS: dict[str, tuple[str, ...]] = {
    "CT": ("ct", "computed tomography", "cect", "ncct", "cta"),
    "MR": ("mri", "mr", "magnetic resonance", "t1-weighted", "t2-weighted", "flair"),
    "XR": ("x-ray", "xray", "radiograph", "radiographs", "radiography", "plain film"),
    "US": ("ultrasound", "sonography", "sonographic", "sonogram", "ultrasonography", "echography"),
    "MG": ("mammogram", "mammography", "mammographic"),
    "PET": ("pet", "positron emission"),
    "NM": ("scintigraphy", "spect", "nuclear medicine"),
    "HISTO": ("histopathology", "histopathological", "histology", "histological", "h&e", "haematoxylin",
              "hematoxylin", "immunohistochemistry", "immunohistochemical", "micrograph", "whole-slide"),
    "FUNDUS": ("fundus", "fundoscopy", "fundus photograph", "retinal photograph"),
    "DERM": ("dermoscopy", "dermoscopic", "dermatoscopy"),
    "ENDO": ("endoscopy", "endoscopic", "colonoscopy"),
    "XA": ("angiography", "angiogram"),
    "OCT": ("optical coherence tomography",),
}

# modality codes found in the tables (DICOM Modality and the readers' own) -> class above
MODALITY_CODES: dict[str, str] = {
    "CT": "CT", "MR": "MR", "MRI": "MR", "CR": "XR", "DX": "XR", "DR": "XR", "RG": "XR", "XR": "XR",
    "X-RAY": "XR", "XRAY": "XR", "US": "US", "MG": "MG", "PT": "PET", "PET": "PET", "NM": "NM",
    "HISTO": "HISTO", "SM": "HISTO", "PATHOLOGY": "HISTO", "HISTOLOGY": "HISTO", "IHC": "HISTO",
    "FUNDUS": "FUNDUS", "OP": "FUNDUS", "DERM": "DERM", "ES": "ENDO", "ENDO": "ENDO", "XA": "XA",
    "OCT": "OCT", "OPT": "OCT",
}

# classes that may legitimately be named together (a mammogram is an X-ray; PET is read with CT)
MODALITY_COMPATIBLE: dict[str, frozenset[str]] = {
    "MG": frozenset({"XR"}), "XR": frozenset({"MG", "XA"}), "XA": frozenset({"XR"}),
    "PET": frozenset({"CT", "NM"}), "CT": frozenset({"PET"}), "NM": frozenset({"PET"}),
}

# organ (canonical) -> body region; synonyms map to the canonical name
ORGAN_REGION: dict[str, str] = {
    "brain": "head", "cerebellum": "head", "skull": "head", "head": "head",
    "eye": "eye", "retina": "eye", "optic disc": "eye", "macula": "eye",
    "thyroid": "neck", "neck": "neck",
    "lung": "chest", "heart": "chest", "mediastinum": "chest", "trachea": "chest", "pleura": "chest",
    "chest": "chest", "thorax": "chest", "oesophagus": "chest",
    "breast": "breast",
    "liver": "abdomen", "kidney": "abdomen", "spleen": "abdomen", "pancreas": "abdomen",
    "stomach": "abdomen", "gallbladder": "abdomen", "bowel": "abdomen", "colon": "abdomen",
    "adrenal": "abdomen", "abdomen": "abdomen",
    "bladder": "pelvis", "prostate": "pelvis", "uterus": "pelvis", "ovary": "pelvis", "rectum": "pelvis",
    "pelvis": "pelvis",
    "spine": "spine", "vertebra": "spine",
    "knee": "limb", "hip": "pelvis", "shoulder": "limb", "hand": "limb", "foot": "limb", "extremity": "limb",
    "skin": "skin",
}

ORGAN_SYNONYMS: dict[str, str] = {
    "brain": "brain", "cerebral": "brain", "intracranial": "brain", "cerebellar": "cerebellum",
    "cerebellum": "cerebellum", "skull": "skull", "cranium": "skull",
    "eye": "eye", "ocular": "eye", "retina": "retina", "retinal": "retina", "optic disc": "optic disc",
    "macula": "macula", "macular": "macula",
    "thyroid": "thyroid",
    "lung": "lung", "lungs": "lung", "pulmonary": "lung", "heart": "heart", "cardiac": "heart",
    "mediastinum": "mediastinum", "mediastinal": "mediastinum", "trachea": "trachea", "pleura": "pleura",
    "pleural": "pleura", "thorax": "chest", "thoracic": "chest", "chest": "chest",
    "oesophagus": "oesophagus", "esophagus": "oesophagus",
    "breast": "breast", "breasts": "breast", "mammary": "breast",
    "liver": "liver", "hepatic": "liver", "kidney": "kidney", "kidneys": "kidney", "renal": "kidney",
    "spleen": "spleen", "splenic": "spleen", "pancreas": "pancreas", "pancreatic": "pancreas",
    "stomach": "stomach", "gastric": "stomach", "gallbladder": "gallbladder", "bowel": "bowel",
    "intestine": "bowel", "intestinal": "bowel", "colon": "colon", "colonic": "colon",
    "adrenal": "adrenal", "abdomen": "abdomen", "abdominal": "abdomen",
    "bladder": "bladder", "prostate": "prostate", "prostatic": "prostate", "uterus": "uterus",
    "uterine": "uterus", "ovary": "ovary", "ovarian": "ovary", "rectum": "rectum", "rectal": "rectum",
    "pelvis": "pelvis", "pelvic": "pelvis",
    "spine": "spine", "spinal": "spine", "vertebra": "vertebra", "vertebrae": "vertebra",
    "vertebral": "vertebra", "knee": "knee", "hip": "hip", "shoulder": "shoulder", "hand": "hand",
    "foot": "foot", "skin": "skin", "cutaneous": "skin",
    "head": "head", "neck": "neck", "extremity": "extremity", "extremities": "extremity",
    "limb": "extremity", "arm": "extremity", "leg": "extremity", "wrist": "extremity", "ankle": "extremity",
    "elbow": "extremity",
}

# regions that may show each other's organs at their border (the lung bases on an abdominal CT ...)
REGION_ADJACENT: dict[str, frozenset[str]] = {
    "head": frozenset({"neck", "eye"}), "eye": frozenset({"head"}), "neck": frozenset({"head", "chest", "spine"}),
    "chest": frozenset({"neck", "abdomen", "breast", "spine"}), "breast": frozenset({"chest"}),
    "abdomen": frozenset({"chest", "pelvis", "spine"}), "pelvis": frozenset({"abdomen", "spine", "limb"}),
    "spine": frozenset({"neck", "chest", "abdomen", "pelvis"}), "limb": frozenset({"pelvis"}),
    "skin": frozenset(),
}

# abnormal findings (words that claim something is wrong)
FINDING_TERMS: tuple[str, ...] = (
    "lesion", "lesions", "tumour", "tumours", "tumor", "tumors", "mass", "masses", "nodule", "nodules",
    "cyst", "cysts", "metastasis", "metastases", "haemorrhage", "hemorrhage", "fracture", "fractures",
    "effusion", "abscess", "carcinoma", "cancer", "infarct", "infarction", "pneumothorax",
    "consolidation", "calcification", "calcifications", "polyp", "polyps", "aneurysm", "neoplasm",
)

# ROI labels that name normal anatomy rather than a finding
NORMAL_LABELS: frozenset[str] = frozenset(
    {"body", "background", "normal", "bone", "air", "fat", "tissue", "soft tissue", "vessel", "vessels"}
)

SIZE_CLASS: dict[str, str] = {
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

INTENSITY_PREFIX: dict[str, str] = {"hyper": "hyper", "hypo": "hypo", "iso": "iso"}
INTENSITY_STEMS: tuple[str, ...] = ("dense", "intense", "echoic", "attenuating", "attenuation", "density", "intensity")

NUMBER_WORDS: dict[str, int] = {
    "a single": 1, "single": 1, "solitary": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "a pair of": 2, "both": 2,
}
COUNT_NOUNS: tuple[str, ...] = (
    "lesions", "lesion", "regions of interest", "region of interest", "rois", "roi", "nodules", "nodule",
    "masses", "mass", "tumours", "tumour", "tumors", "tumor", "foci", "focus", "findings", "finding",
    "regions", "region", "components", "component", "cysts", "cyst",
)

NEGATIONS: tuple[str, ...] = ("no", "without", "absence of", "absent", "not", "free of", "negative for", "rule out",
                              "rules out", "neither", "nor")
