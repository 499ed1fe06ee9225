"""Built-in chest-radiograph expert: lung fields, heart and mediastinum, and the cardiothoracic ratio.

Scope: frontal (PA or AP) chest radiographs, CR or DX, displayed with air dark (the reader applies
MONOCHROME1 inversion). Declined when the metadata names another body part, or when the image holds
no pair of dark, air-filled fields on either side of a bright midline (a limb, a skull, a lateral view).

Method (classical, as in the cardiothoracic-ratio literature): grey levels scaled to their 1-99 %
range on a ~256-pixel grid; the lung fields are the two largest dark regions (below a threshold set
by Otsu's method within the thorax) that do not touch the image edge, one on each side of the
midline, smoothed and filled (nodules and vessels inside a field belong to it). Between them, over
the lungs' height, lies the mediastinum; its lower part (below the hila, the lower 55 % of the lung
height) is the heart. Cardiothoracic ratio = the widest gap between the two lungs' inner edges in
that lower part / the widest span between their outer edges (the inner thoracic width).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medtrinity_assets.roi.body_region import RegionCall, region_of_organ
from medtrinity_assets.roi.builtin import ExpertInput, Reading
from medtrinity_assets.roi.builtin.grid import Grid, components, disk

HEART_SHARE = 0.55  # lower share of the lung height where the cardiac silhouette is measured


def read(inp: ExpertInput) -> Reading:
    meta = region_of_organ(inp.organ)
    if meta and meta != "chest":
        return Reading(note=f"chest radiograph expert: the metadata names the {inp.organ}, not the chest")
    g = Grid.for_image(inp.values.shape, 1.0, target_mm=max(inp.values.shape) / 256, max_side=256)
    v = g.down(inp.values)
    lo, hi = np.percentile(v, [1, 99])
    if hi <= lo:
        return Reading(note="chest radiograph expert: a flat image")
    v = np.clip((v - lo) / (hi - lo), 0, 1)
    lungs = _lung_fields(v)
    if lungs is None:
        return Reading(note="no pair of lung fields: not a frontal chest radiograph")
    right_img, left_img = lungs  # image-left and image-right fields
    both = right_img | left_img
    heart, mediastinum, ratio = _heart(right_img, left_img)
    measures: dict[str, float] = {"lung_fraction_of_image": round(float(both.mean()), 3)}
    if ratio is not None:
        measures["cardiothoracic_ratio"] = round(ratio, 3)
    a_r, a_l = float(right_img.sum()), float(left_img.sum())
    measures["lung_area_ratio"] = round(min(a_r, a_l) / max(a_r, a_l), 3)
    names = _side_names(inp.col_toward)
    coarse = {names[0]: right_img, names[1]: left_img, "heart": heart, "mediastinum": mediastinum}
    masks = {k: g.up(m, smooth=True) for k, m in coarse.items() if m.any()}
    note = "" if inp.col_toward in ("L", "R") else "lung sides not named: the image's left-right orientation is unknown"
    return Reading(masks={k: m for k, m in masks.items() if m.any()},
                   region=RegionCall("chest", evidence="two lung fields either side of the mediastinum"),
                   measurements=measures, note=note)


def _row_extents(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: first and last column of the mask (-1 where the row is empty)."""
    any_ = m.any(axis=1)
    first = np.where(any_, np.argmax(m, axis=1), -1)
    last = np.where(any_, m.shape[1] - 1 - np.argmax(m[:, ::-1], axis=1), -1)
    return first, last


def _heart(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Heart and mediastinum masks and the cardiothoracic ratio from the image-left (``a``) and image-right
    (``b``) lung fields: (MRD + MLD) / ID, each the widest in its own row (the radiological definition).

    Midline: the middle of the gap between the fields in their upper third. MRD / MLD: the widest distance
    from the midline to a field's inner edge in the lower part of the lung height, counting only rows where
    that field is at least half as wide as its widest row (a lower zone the threshold missed would otherwise
    read as cardiac width). ID: the widest span between the two fields' outer edges."""
    a_first, a_last = _row_extents(a)
    b_first, b_last = _row_extents(b)
    rows = np.flatnonzero((a_first >= 0) | (b_first >= 0))
    top, bottom = rows[0], rows[-1]
    split = top + int(round((1 - HEART_SHARE) * (bottom - top + 1)))
    paired = np.flatnonzero((a_first >= 0) & (b_first >= 0))
    upper = paired[paired < top + (bottom - top) // 3]
    if not upper.size:
        return np.zeros_like(a), np.zeros_like(a), None
    mid = float(np.median((a_last[upper] + b_first[upper]) / 2.0))
    wa, wb = np.where(a_first >= 0, a_last - a_first + 1, 0), np.where(b_first >= 0, b_last - b_first + 1, 0)
    lower = np.arange(a.shape[0]) >= split
    ok_a = lower & (wa >= 0.5 * wa.max())
    ok_b = lower & (wb >= 0.5 * wb.max())
    if not ok_a.any() or not ok_b.any():
        return np.zeros_like(a), np.zeros_like(a), None
    mrd = float(np.max(mid - a_last[ok_a] - 1))
    mld = float(np.max(b_first[ok_b] - mid))
    id_ = float(np.max(b_last[paired] - a_first[paired] + 1))
    cols = np.arange(a.shape[1])[None, :]
    gap = (cols > a_last[:, None]) & (cols < b_first[:, None]) & (a_first >= 0)[:, None] & (b_first >= 0)[:, None]
    within = (cols >= mid - mrd) & (cols <= mid + mld)
    heart = gap & within & lower[:, None] & (np.arange(a.shape[0]) <= bottom)[:, None]
    mediastinum = gap & ~lower[:, None] & (np.arange(a.shape[0]) >= top)[:, None]
    ratio = (max(mrd, 0.0) + max(mld, 0.0)) / id_ if id_ > 0 else None
    return heart, mediastinum, ratio


def _side_names(col_toward: str) -> tuple[str, str]:
    """Names of the image-left and image-right lung fields (patient sides when the orientation is known)."""
    if col_toward == "L":  # patient's left toward high columns: the image-left field is the right lung
        return "right lung", "left lung"
    if col_toward == "R":
        return "left lung", "right lung"
    return "lung", "lung "  # unknown: both are 'lung' (the second keeps its own key until joined)


def _lung_fields(v: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    from skimage.filters import threshold_otsu

    h, w = v.shape
    # the thorax: the central 90 % of the width, above the lowest tenth (abdomen, collimation)
    # Otsu's threshold per horizontal band of the thorax, interpolated over the rows: the lower zones, under
    # more soft tissue, are brighter than the apices and would be lost to one global threshold
    y0, y1, x0, x1 = int(0.05 * h), int(0.9 * h), int(0.05 * w), int(0.95 * w)
    edges = np.linspace(y0, y1, 5).astype(int)
    centres = (edges[:-1] + edges[1:]) / 2
    ts = [threshold_otsu(v[a:b, x0:x1]) for a, b in zip(edges[:-1], edges[1:])]
    t = np.interp(np.arange(h), centres, ts)[:, None]
    dark = v < t
    # a margin of 4 % is left out: air beside the neck and shoulders joins the apices there
    my, mx = max(int(0.04 * h), 1), max(int(0.04 * w), 1)
    dark[:my], dark[-my:], dark[:, :mx], dark[:, -mx:] = False, False, False, False
    dark = ndimage.binary_opening(dark, structure=disk(3))  # breaks thin bridges between a field and outside air
    candidates = []
    for c in components(dark, 0.01 * h * w):
        ys, xs = np.nonzero(c)
        if ys.min() <= my or xs.min() <= mx or ys.max() >= h - 1 - my or xs.max() >= w - 1 - mx:
            continue  # air outside the patient, or a field cut by the edge
        candidates.append(c)
    mid = w / 2
    left_side = [c for c in candidates if np.nonzero(c)[1].mean() < mid]
    right_side = [c for c in candidates if np.nonzero(c)[1].mean() >= mid]
    if not left_side or not right_side:
        return None
    a, b = left_side[0], right_side[0]  # the largest on each side (components() sorts by size)
    if min(a.sum(), b.sum()) < 0.25 * max(a.sum(), b.sum()):
        return None  # one field and a speck: not a pair of lungs
    fields = []
    for m in (a, b):
        m = ndimage.binary_closing(m, structure=disk(3))
        fields.append(ndimage.binary_fill_holes(m))
    fa, fb = fields
    if (fa & fb).any():
        fb = fb & ~fa
    # tall, not wide: a lung field is at least as high as it is wide
    for m in (fa, fb):
        ys, xs = np.nonzero(m)
        if (ys.max() - ys.min()) < 0.8 * (xs.max() - xs.min()):
            return None
    return fa, fb
