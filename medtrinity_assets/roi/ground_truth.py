"""Ground truth shipped with a source -> ROI candidates (masks with a label), before facts.

Inputs are what ingest put in the ``images`` table: a label-map PNG on the image grid with its
value -> name map (NIfTI/MSD label maps, DICOM SEG segments and RTSTRUCT contours all arrive as
label maps), and COCO boxes. Labels are split into *anatomy* (organs: reference regions for
relations) and *findings* (what a description is about). A problem with one label or box becomes
an error candidate, never a silent gap.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

# Organ and structure names (singular, lower case, without side words). A label whose name is in
# here is anatomy; anything else (tumour, cyst, nodule, lesion, haemorrhage ...) is a finding.
ANATOMY_NAMES = frozenset(
    """
    body patient external skin fat muscle bone vertebra spine rib ribs skull pelvis femur sternum
    liver spleen kidney kidneys pancreas stomach bowel colon duodenum intestine gallbladder bladder
    adrenal gland aorta vena cava vessel vessels artery vein portal heart myocardium ventricle atrium
    lung lungs trachea airway esophagus oesophagus thyroid brain cerebellum brainstem ventricles
    prostate uterus ovary breast eye lens optic nerve cord parotid mandible hippocampus
    """.split()
)
SIDE_WORDS = re.compile(r"\b(left|right|l|r|lt|rt)\b|_(l|r)$|^(l|r)_")


def label_kind(name: str, overrides: dict[str, str] | None = None) -> str:
    """'anatomy' or 'finding' for a label name; ``overrides`` (config ``rois.label_kinds``) wins."""
    key = name.strip().lower()
    if overrides and key in overrides:
        kind = overrides[key]
        if kind not in ("anatomy", "finding"):
            raise ValueError(f"rois.label_kinds[{name!r}] = {kind!r}: expected 'anatomy' or 'finding'")
        return kind
    words = SIDE_WORDS.sub(" ", key.replace("-", " ").replace("_", " ")).split()
    if not words:
        return "finding"
    # every word an organ word ("left kidney", "inferior vena cava", "spinal cord") -> anatomy
    if all(w in ANATOMY_NAMES or w in {"inferior", "superior", "spinal", "urinary", "small", "large"} for w in words):
        return "anatomy"
    return "finding"


@dataclass
class Candidate:
    """One labelled mask (or an error for one) before it is split into components and described."""

    label: str
    kind: str
    origin: str
    mask: np.ndarray | None  # bool (H, W); None for an error
    confidence: float = 1.0
    error: str | None = None
    digest: str = ""  # sha256 of the model that produced it ('' for ground truth)


def from_label_map(
    label_map: np.ndarray,
    names: dict[int, str],
    image_shape: tuple[int, int],
    kinds: dict[str, str] | None = None,
    origin: str = "ground_truth",
) -> list[Candidate]:
    """One candidate per label value present in the map (value 0 is background)."""
    if label_map.ndim == 3 and label_map.shape[-1] in (3, 4):
        return [Candidate("", "finding", origin, None, error=(
            f"label map is a colour image {label_map.shape}; expected one integer value per pixel"))]
    if label_map.shape != tuple(image_shape):
        return [Candidate("", "finding", origin, None, error=(
            f"label map shape {label_map.shape} differs from the image's {tuple(image_shape)}; "
            "re-export the label map on the image grid"))]
    out = []
    lm = np.asarray(label_map)
    present = np.flatnonzero(np.bincount(lm.ravel())) if lm.dtype.kind in "ub" else np.unique(lm)
    for value in (int(v) for v in present if v != 0):
        name = names.get(value) or f"label_{value}"
        out.append(Candidate(name, label_kind(name, kinds), origin, label_map == value))
    return out


def from_boxes(boxes: list[dict[str, Any]], image_shape: tuple[int, int], kinds: dict[str, str] | None = None,
               origin: str = "ground_truth") -> list[Candidate]:
    """Normalised xyxy boxes -> box-shaped masks; an invalid or empty box is an error candidate."""
    h, w = image_shape
    out = []
    for i, box in enumerate(boxes):
        label = str(box.get("label") or f"box_{i}")
        bb = box.get("bbox")
        try:
            x0, y0, x1, y1 = (float(b) for b in bb)
        except (TypeError, ValueError):
            out.append(Candidate(label, label_kind(label, kinds), origin, None,
                                 error=f"box {i} ({label!r}): bbox {bb!r} is not four numbers [x0, y0, x1, y1]"))
            continue
        if not (0 <= x0 < x1 <= 1.0001 and 0 <= y0 < y1 <= 1.0001):
            out.append(Candidate(label, label_kind(label, kinds), origin, None, error=(
                f"box {i} ({label!r}): bbox {bb} is not a normalised xyxy box inside the image")))
            continue
        c0, c1 = int(np.floor(x0 * w)), int(np.ceil(x1 * w))
        r0, r1 = int(np.floor(y0 * h)), int(np.ceil(y1 * h))
        mask = np.zeros((h, w), bool)
        mask[r0:r1, c0:c1] = True
        if not mask.any():
            out.append(Candidate(label, label_kind(label, kinds), origin, None,
                                 error=f"box {i} ({label!r}): bbox {bb} covers no pixel of a {w}x{h} image"))
            continue
        out.append(Candidate(label, label_kind(label, kinds), origin, mask, confidence=1.0))
    return out


def parse_label_names(raw: str | None) -> dict[int, str]:
    """``gt_label_names_json`` -> {value: name}; bad JSON raises ValueError naming the column."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
        return {int(k): str(v) for k, v in data.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"gt_label_names_json is not a {{value: name}} JSON object: {exc}") from None


def parse_boxes(raw: str | None) -> list[dict[str, Any]]:
    if not raw:
        return []
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"gt_boxes_json is not JSON: {exc}") from None
    if not isinstance(data, list):
        raise ValueError("gt_boxes_json must be a JSON list of {label, bbox}")
    return data
