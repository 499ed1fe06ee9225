"""Built-in anatomy expert: reference regions found by intensity and morphology alone.

CT (values in HU): body (largest air-separated object, holes filled, table removed), lungs (air
inside the body), bone (>= 200 HU), kidneys (enhancing 110-220 HU compact blobs beside the
spine) and liver (the largest 53-85 HU soft-tissue region on the patient's right). These are the
textbook HU ranges of a portal-venous CT; they serve as reference regions for relations
("inside the liver", "adjacent to bone"), not as a clinical segmentation. Other grey modalities:
the body/foreground by Otsu's threshold. No weights: the digest of this file is its version.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

LABELS = ("body", "lung", "bone", "kidney", "liver")


def _disk(radius_px: float) -> np.ndarray:
    r = max(int(round(radius_px)), 1)
    yy, xx = np.ogrid[-r : r + 1, -r : r + 1]
    return xx * xx + yy * yy <= r * r


def _largest(mask: np.ndarray, keep_ratio: float = 0.0) -> np.ndarray:
    """Largest component, plus any component at least ``keep_ratio`` of its size."""
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())[1:]
    big = sizes.max()
    keep = np.flatnonzero(sizes >= max(keep_ratio * big, big if keep_ratio == 0 else 1)) + 1
    return np.isin(lab, keep)


def _components(mask: np.ndarray, min_px: float, max_px: float = math.inf) -> list[np.ndarray]:
    lab, n = ndimage.label(mask)
    if n == 0:
        return []
    sizes = np.bincount(lab.ravel())[1:]
    return [lab == i + 1 for i in range(n) if min_px <= sizes[i] <= max_px]


def body_mask(values: np.ndarray, modality: str, px_mm: float = 1.0) -> np.ndarray:
    """The patient's body (CT: > -500 HU; others: above Otsu's threshold), holes filled, specks removed."""
    if (modality or "").upper() == "CT":
        fg = values > -500
    else:
        from skimage.filters import threshold_otsu

        finite = values[np.isfinite(values)]
        if finite.size == 0 or finite.min() == finite.max():
            return np.zeros(values.shape, bool)
        fg = values > threshold_otsu(finite)
    # opening by ~3 mm detaches the scanner table and cables; keep big objects (two legs, two arms)
    fg = ndimage.binary_opening(fg, structure=_disk(3.0 / px_mm))
    fg = _largest(fg, keep_ratio=0.3)
    return ndimage.binary_fill_holes(fg)


ABDOMINAL_ORGANS_SKIPPED_FOR = frozenset({"head", "brain", "neck", "extremity", "knee", "hand", "foot", "spine"})


def segment_ct(values: np.ndarray, px_mm: float = 1.0, organ: str | None = None) -> dict[str, np.ndarray]:
    """Reference regions of one axial CT slice in HU. ``px_mm``: mm per pixel (1.0 when unknown).

    Kidneys and liver are only looked for where they can be: not on images of the head or limbs, and
    not on slices that are mostly lung (kidneys: lungs under 5 % of the body; liver: under 30 %), and not
    when the field of view cuts the body (the frame that makes "right upper abdomen" meaningful is lost)."""
    out: dict[str, np.ndarray] = {}
    body = body_mask(values, "CT", px_mm)
    if not body.any():
        return out
    out["body"] = body
    mm2 = px_mm * px_mm
    smooth = ndimage.gaussian_filter(values.astype(np.float32), 1.5 / px_mm)

    inner = ndimage.binary_erosion(body, structure=_disk(4.0 / px_mm))  # skin/air boundary excluded
    air = inner & (smooth < -400)
    lungs = [c for c in _components(air, 400 / mm2)]  # >= 4 cm^2: bowel gas bubbles are smaller
    if lungs:
        out["lung"] = ndimage.binary_fill_holes(np.logical_or.reduce(lungs))

    bone = body & (smooth >= 200)
    bone = ndimage.binary_opening(bone, structure=_disk(1.0 / px_mm))
    bone_parts = _components(bone, 20 / mm2)
    if bone_parts:
        out["bone"] = ndimage.binary_fill_holes(np.logical_or.reduce(bone_parts))

    lung_share = float(out["lung"].sum()) / float(body.sum()) if "lung" in out else 0.0
    if (organ or "").lower() in ABDOMINAL_ORGANS_SKIPPED_FOR or _cropped(body):
        return out  # organ positions mean nothing on a head/limb image or a cross-section cut by the field of view
    near_bone = ndimage.binary_dilation(out.get("bone", np.zeros_like(body)), structure=_disk(3.0 / px_mm))
    enh = inner & (smooth >= 110) & (smooth < 200) & ~near_bone
    enh = ndimage.binary_opening(enh, structure=_disk(2.0 / px_mm))
    kidneys = [c for c in _components(enh, 150 / mm2, 12000 / mm2) if _compact(c)]
    if kidneys and lung_share < 0.05:
        out["kidney"] = np.logical_or.reduce(kidneys)

    soft = inner & (smooth >= 53) & (smooth <= 85)
    soft = ndimage.binary_opening(soft, structure=_disk(3.0 / px_mm))
    cols = np.nonzero(body.any(axis=0))[0]
    mid = (cols.min() + cols.max()) / 2.0
    parts = sorted(_components(soft, 1500 / mm2), key=lambda c: -int(c.sum())) if lung_share < 0.30 else []
    # the patient's right is the image's LEFT in canonical (LPS) arrays
    for part in parts:
        if np.nonzero(part)[1].mean() < mid:
            out["liver"] = ndimage.binary_fill_holes(ndimage.binary_closing(part, structure=_disk(3.0 / px_mm)))
            break
    return out


def _cropped(body: np.ndarray, limit: float = 0.10) -> bool:
    """The body touches the image border along more than ``limit`` of it: a cut field of view."""
    border = np.concatenate([body[0], body[-1], body[:, 0], body[:, -1]])
    return float(border.mean()) > limit


def _compact(mask: np.ndarray) -> bool:
    """Blob-like (solidity >= 0.8): rejects thin enhancing vessels and bowel walls."""
    from skimage.measure import regionprops

    return float(regionprops(mask.astype(np.uint8))[0].solidity) >= 0.8


def segment(values: np.ndarray, modality: str, px_mm: float = 1.0, organ: str | None = None) -> dict[str, np.ndarray]:
    """Regions by modality: the CT set, else the body (foreground) alone."""
    if (modality or "").upper() == "CT":
        return segment_ct(values, px_mm, organ)
    body = body_mask(values, modality, px_mm)
    return {"body": body} if body.any() else {}
