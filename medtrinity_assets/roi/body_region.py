"""Body regions: the six words an image's level is stated in, and what a source's ``organ`` says about them.

An expert measures the region of a slice (``RegionCall``); the metadata names an organ or body part
(``region_of_organ``). The image-facts row keeps both and says whether they agree, so a lung-level
slice of a series labelled "abdomen" is stated as lower chest instead of inheriting the label.
"""

from __future__ import annotations

from dataclasses import dataclass

from medtrinity_assets.tables import BODY_REGIONS

# metadata words (source `organ`, DICOM BodyPartExamined lower-cased) -> region
_ORGAN_REGION = {
    "head": ("head", "brain", "skull", "cranium", "orbit", "sinus", "sinuses", "face", "iac", "pituitary", "tmj", "eye"),
    "neck": ("neck", "cspine", "c-spine", "larynx", "thyroid", "pharynx"),
    "chest": ("chest", "thorax", "lung", "lungs", "heart", "breast", "mediastinum", "tspine", "t-spine", "rib", "ribs",
              "esophagus", "cardiac", "coronary"),
    "abdomen": ("abdomen", "liver", "spleen", "kidney", "kidneys", "pancreas", "stomach", "bowel", "colon", "lspine",
                "l-spine", "adrenal", "gallbladder", "abd"),
    "pelvis": ("pelvis", "bladder", "prostate", "uterus", "ovary", "rectum", "hip", "sacrum", "coccyx"),
    "extremity": ("extremity", "extremities", "arm", "leg", "knee", "hand", "foot", "ankle", "wrist", "elbow",
                  "shoulder", "femur", "tibia", "fibula", "humerus", "radius", "ulna", "forearm", "thigh", "finger",
                  "toe", "lowerlimb", "upperlimb", "lower limb", "upper limb", "calf"),
}
WORD_TO_REGION = {w: region for region, words in _ORGAN_REGION.items() for w in words}


def region_of_organ(organ: str | None) -> str:
    """The body region an organ / body-part word belongs to; '' when unknown or not one region
    (e.g. "whole body", "abdomen pelvis" maps to its first known word)."""
    text = (organ or "").strip().lower().replace("_", " ")
    if not text:
        return ""
    if text in WORD_TO_REGION:
        return WORD_TO_REGION[text]
    for word in text.replace(",", " ").replace("/", " ").split():
        if word in WORD_TO_REGION:
            return WORD_TO_REGION[word]
    return ""


@dataclass(frozen=True)
class RegionCall:
    """An expert's reading of one image's body region, with the evidence it rests on."""

    region: str  # one of BODY_REGIONS
    detail: str = ""  # a finer level when measured ('lower chest')
    evidence: str = ""  # short, for a person reading the table: 'lungs 31% of the body'

    def __post_init__(self) -> None:
        if self.region not in BODY_REGIONS:
            raise ValueError(f"body region {self.region!r} is not one of {BODY_REGIONS}")


def agreement(region: str, metadata_organ: str | None) -> bool | None:
    """Whether a measured region agrees with the metadata's organ; None when either is unknown."""
    meta = region_of_organ(metadata_organ)
    if not region or not meta:
        return None
    return region == meta
