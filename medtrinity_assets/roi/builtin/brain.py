"""Built-in brain expert: brain, hemispheres and ventricles on axial head CT and brain MR.

Scope: axial slices of the head. CT (HU): the brain is the brain-density tissue (15-45 HU) the skull
encloses (the CT expert's skull test); a slice without a skull is declined. MR: only when the
metadata names the head or brain (an MR slice alone does not say what it shows); the brain is the
largest object above Otsu's threshold after a 3 mm erosion detaches the scalp (skull-stripped images
work unchanged). CSF is the darkest of three intensity classes inside the brain (T1-weighted MR, CT:
CSF is dark; T2-weighted images are outside the scope); ventricles are the CSF pockets in the central
half of the brain that do not reach its surface (CT: CSF is below 15 HU). Hemispheres: the brain split at the interhemispheric
fissure (the darkest column near the brain's middle), named by patient side from the slice's
orientation; without a known orientation no side is named and no hemisphere is drawn.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medtrinity_assets.roi.body_region import RegionCall, region_of_organ
from medtrinity_assets.roi.builtin import ExpertInput, Reading
from medtrinity_assets.roi.builtin.grid import Grid, components, disk, largest, union


def read(inp: ExpertInput) -> Reading:
    modality = inp.modality.upper()
    if modality == "CT":
        if not inp.physical or float(np.min(inp.values)) > -100:
            return Reading(note="brain expert: the CT values are not Hounsfield units")
        brain, g, v = _ct_brain(inp)
    elif modality == "MR":
        if region_of_organ(inp.organ) != "head":
            return Reading(note="brain expert: runs on MR only when the metadata names the head or brain")
        brain, g, v = _mr_brain(inp)
    else:
        return Reading(note=f"brain expert: modality {modality or 'unknown'} is outside its scope")
    if brain is None or brain.sum() < g.px2(400):  # < 4 cm^2: an edge slice or no brain
        return Reading(note="no brain on this slice")
    coarse = {"brain": brain}
    # CSF: water density on CT (below 15 HU, smoothed), the darkest of three classes on T1-weighted MR
    csf = brain & (ndimage.gaussian_filter(v, max(g.px(1.0), 0.5)) < 15) if modality == "CT" else _csf(v, brain)
    ventricles = _ventricles(csf, brain, g)
    if ventricles.any():
        coarse["ventricles"] = ventricles
    mid = _midline(v, brain)
    measures = {"brain_area_cm2": round(float(brain.sum()) * g.coarse_mm**2 / 100, 1) if inp.spacing_known else None,
                "csf_fraction_of_brain": round(float(csf.sum()) / float(brain.sum()), 3),
                "ventricle_fraction_of_brain": round(float(ventricles.sum()) / float(brain.sum()), 3)}
    measures = {k: v for k, v in measures.items() if v is not None}
    note = ""
    if inp.col_toward in ("L", "R") and mid is not None:
        cols = np.arange(brain.shape[1])[None, :]
        high = brain & (cols >= mid)  # columns toward col_toward
        low = brain & (cols < mid)
        names = ("left hemisphere", "right hemisphere") if inp.col_toward == "L" else ("right hemisphere", "left hemisphere")
        for name, m in zip(names, (high, low)):
            if m.sum() >= g.px2(200):
                coarse[name] = m
        a_hi, a_lo = float(high.sum()), float(low.sum())
        measures["hemisphere_area_ratio"] = round(min(a_hi, a_lo) / max(a_hi, a_lo, 1.0), 3)
    else:
        note = "hemispheres not named: the slice's left-right orientation is unknown"
    masks = {name: g.up(m, smooth=True) for name, m in coarse.items()}
    return Reading(masks={k: m for k, m in masks.items() if m.any()}, region=RegionCall("head", evidence="brain on the slice"),
                   measurements=measures, note=note)


def _ct_brain(inp: ExpertInput):
    from medtrinity_assets.roi.builtin.ct import _skull, body_mask_coarse

    g = Grid.for_image(inp.values.shape, inp.px_mm)
    v = g.down(inp.values)
    body = body_mask_coarse(v, g)
    if not body.any():
        return None, g, v
    smooth = ndimage.gaussian_filter(v, max(g.px(1.5), 0.5))
    bone = body & (smooth >= 200)
    inside, share = _skull(bone, body, smooth, g)
    if share < 0.2:
        return None, g, v
    # the cranial cavity: bone-enclosed tissue between CSF and clotted blood (0-90 HU), holes filled
    cavity = ndimage.binary_fill_holes(ndimage.binary_closing(inside, structure=disk(g.px(3.0))))
    cavity &= (smooth > -20) & (smooth < 90) & ~bone
    cavity = ndimage.binary_fill_holes(largest(ndimage.binary_opening(cavity, structure=disk(g.px(2.0))), keep_ratio=0.2))
    return cavity, g, v


def _mr_brain(inp: ExpertInput):
    from skimage.filters import threshold_otsu

    g = Grid.for_image(inp.values.shape, inp.px_mm)
    v = g.down(inp.values)
    finite = v[np.isfinite(v)]
    if finite.size == 0 or finite.min() == finite.max():
        return None, g, v
    fg = v > threshold_otsu(finite)
    if fg.mean() > 0.97:  # the field of view lies inside the brain (a tight crop): all of it is brain
        return np.ones_like(fg), g, v
    core = ndimage.binary_erosion(fg, structure=disk(g.px(3.0)))  # detaches the scalp where a skull separates it
    if not core.any():
        return None, g, v
    core = largest(core, keep_ratio=0.15)  # temporal lobes and cerebellum are separate objects low in the head
    brain = ndimage.binary_dilation(core, structure=disk(g.px(3.0))) & fg
    return ndimage.binary_fill_holes(ndimage.binary_closing(brain, structure=disk(g.px(2.0)))), g, v


def _csf(v: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """The darkest of three intensity classes inside the brain (multi-Otsu)."""
    from skimage.filters import threshold_multiotsu

    vals = v[brain]
    if vals.size < 30 or vals.min() == vals.max():
        return np.zeros_like(brain)
    try:
        low = threshold_multiotsu(vals, classes=3)[0]
    except ValueError:
        return np.zeros_like(brain)
    return brain & (v < low)


def _ventricles(csf: np.ndarray, brain: np.ndarray, g: Grid) -> np.ndarray:
    """CSF pockets of >= 20 mm^2 in the central half of the brain that stay clear of its surface."""
    rows, cols = np.flatnonzero(brain.any(axis=1)), np.flatnonzero(brain.any(axis=0))
    h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    central = np.zeros_like(brain)
    central[rows[0] + h // 4 : rows[-1] + 1 - h // 4, cols[0] + w // 4 : cols[-1] + 1 - w // 4] = True
    deep = ndimage.binary_erosion(brain, structure=disk(max(g.px(5.0), 1)), border_value=1)
    keep = [c for c in components(csf, g.px2(20)) if not (c & ~deep).any() and (c & central).sum() >= 0.5 * c.sum()]
    return union(keep, brain.shape)


def _midline(v: np.ndarray, brain: np.ndarray) -> int | None:
    """Column of the interhemispheric fissure: the darkest column (mean over the brain) within 10 % of the
    brain's width around its middle."""
    cols = np.flatnonzero(brain.any(axis=0))
    if cols.size < 8:
        return None
    c, w = (cols[0] + cols[-1]) / 2, cols[-1] - cols[0] + 1
    lo, hi = int(round(c - 0.1 * w)), int(round(c + 0.1 * w)) + 1
    counts = brain[:, lo:hi].sum(axis=0)
    sums = np.where(brain[:, lo:hi], v[:, lo:hi], 0).sum(axis=0)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    smooth = ndimage.uniform_filter1d(means, 3, mode="nearest")
    return int(lo + int(np.argmin(smooth)))
