"""Built-in CT expert: tissues of an axial slice by Hounsfield units, and the slice's body region.

Scope: axial CT slices in HU (any body region; adult or child). Regions:

- body: everything above -500 HU connected to the patient (holes filled; table, cables and head
  holders detached by a 3 mm opening);
- lung: air-density (< -400 HU) areas of at least 4 cm^2 inside the body, not enclosed by the skull;
- air: the remaining gas inside the body (airway, sinuses, bowel gas), at least 20 mm^2;
- bone: >= 200 HU, with the marrow cavities it encloses (>= 100 HU; not the spinal canal);
- fat: -190 to -30 HU inside the body, away from air edges (partial volume);
- liver / kidney: on abdominal slices only, by the textbook portal-venous HU ranges and position
  (liver: the largest 53-85 HU region on the patient's right; kidneys: compact 110-220 HU blobs).

Body region per slice, from what the slice shows: head (a skull enclosing brain-density tissue),
chest (lungs >= 8 % of the body), extremity (limb-sized cross-sections around a central bone, no
spine), neck (a small cross-section with an airway in front of the spine, no lungs), pelvis (thick
bone on both sides lateral to the spine), abdomen (a trunk section around the spine without any of
these), else undetermined -- said, not guessed. These are rules about anatomy every CT shows, checked
on the real test slices in the tests; they are not a clinical segmentation. All work is done on a
~1.5 mm grid (:mod:`grid`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medtrinity_assets.roi.body_region import RegionCall, region_of_organ
from medtrinity_assets.roi.builtin import ExpertInput, Reading
from medtrinity_assets.roi.builtin.grid import Grid, components, disk, fill_small_holes, largest, union

LABELS = ("body", "lung", "air", "bone", "fat", "liver", "kidney")
NON_ORGANS = frozenset({"body", "fat", "air"})  # tissue classes, not organs (image facts list organs only)


def body_mask_coarse(v: np.ndarray, g: Grid) -> np.ndarray:
    """The patient's body on the coarse grid (> -500 HU, opened by 3 mm, big parts kept, holes filled)."""
    fg = v > -500
    fg = ndimage.binary_opening(fg, structure=disk(g.px(3.0)))
    if not fg.any():
        return fg
    fg = largest(fg, keep_ratio=0.3)  # two legs or two arms are both kept
    return ndimage.binary_fill_holes(fg)


def body_mask(values: np.ndarray, px_mm: float = 1.0, grid_mm: float = 1.5) -> np.ndarray:
    """The body on the image grid, found on a ``grid_mm`` grid (the reference frame of every CT ROI)."""
    g = Grid.for_image(values.shape, px_mm, target_mm=grid_mm)
    return g.up(body_mask_coarse(g.down(values, mean=grid_mm <= 1.5), g))


def _skull(bone: np.ndarray, body: np.ndarray, smooth: np.ndarray, g: Grid) -> tuple[np.ndarray, float]:
    """Brain-density tissue (15-45 HU) within the skull: (intracranial mask, its share of the body).

    Above the skull base the skull is a closed ring and what it encloses is the cranial cavity. At the
    skull base the ring opens (orbits, foramina), so the bone's convex hull stands in for it, accepted
    only when it holds no fat: a trunk's ribs also wrap its organs, but with visceral fat between them."""
    from skimage.morphology import convex_hull_image

    if bone.sum() < g.px2(300):
        return np.zeros_like(body), 0.0
    brain_density = body & ~bone & (smooth >= 15) & (smooth <= 45)
    closed = ndimage.binary_closing(bone, structure=disk(g.px(4.0)), iterations=1)
    inside = ndimage.binary_fill_holes(closed) & ~closed & brain_density
    if inside.sum() < 0.25 * body.sum():
        hull = convex_hull_image(bone) & body
        fat = (smooth >= -190) & (smooth <= -30) & hull
        if hull.sum() >= 0.6 * body.sum() and fat.sum() < 0.04 * hull.sum():
            inside = hull & brain_density
    if not inside.any():
        return inside, 0.0
    inside = union(components(inside, g.px2(200)), inside.shape)  # temporal lobes and cerebellum are apart
    return inside, float(inside.sum()) / max(float(body.sum()), 1.0)


def _region(g: Grid, body: np.ndarray, lung: np.ndarray, bone: np.ndarray, air: np.ndarray, fat: np.ndarray,
            skull_share: float, organ: str | None) -> tuple[RegionCall | None, dict[str, float]]:
    mm2 = g.coarse_mm**2
    body_px = float(body.sum())
    parts = components(body, 0.2 * body_px)
    cols = np.flatnonzero(body.any(axis=0))
    width_mm = (cols.max() - cols.min() + 1) * g.coarse_mm if cols.size else 0.0
    lung_share = float(lung.sum()) / body_px
    fat_share = float(fat.sum()) / body_px
    bone_share = float(bone.sum()) / body_px
    m = {"body_area_cm2": round(body_px * mm2 / 100, 1), "body_width_mm": round(width_mm, 1),
         "lung_fraction_of_body": round(lung_share, 3), "fat_fraction_of_body": round(fat_share, 3),
         "bone_fraction_of_body": round(bone_share, 3), "intracranial_fraction_of_body": round(skull_share, 3)}
    meta = region_of_organ(organ)
    if body_px * mm2 < 1500:  # < 15 cm^2: a finger, a crop, a phantom edge: too little to tell
        return None, m
    if skull_share >= 0.2 and width_mm < 260 and fat_share < 0.15 and lung_share < 0.02:
        return RegionCall("head", evidence=f"brain-density tissue enclosed by bone, {skull_share:.0%} of the head"), m
    if lung_share >= 0.08:
        detail = "lower chest" if meta == "abdomen" else ""
        return RegionCall("chest", detail, evidence=f"lungs {lung_share:.0%} of the body"), m
    spine = _central_posterior_bone(bone, body)
    if len(parts) >= 2 and all(_limb_like(p, bone, g) for p in parts) and not spine:
        return RegionCall("extremity", evidence=f"{len(parts)} limb cross-sections, each around a central bone"), m
    if len(parts) == 1 and width_mm < 200 and not spine and _limb_like(parts[0], bone, g):
        return RegionCall("extremity", evidence="one limb cross-section around a central bone"), m
    neck_sized = width_mm < 160 and body_px * mm2 < 18000  # an adult neck: ~11-15 cm wide, 100-170 cm^2
    if neck_sized and lung_share < 0.02 and skull_share < 0.1 and _airway_before_spine(air, bone, body, g):
        return RegionCall("neck", evidence="small cross-section with an airway in front of the spine, no lungs"), m
    if _pelvic_bone(bone, body, g):
        return RegionCall("pelvis", evidence="thick bone on both sides lateral to the spine"), m
    if spine and width_mm >= 120:  # a trunk section around the spine, without lungs, skull or pelvic bone
        detail = "upper abdomen" if 0.005 <= lung_share else ""
        return RegionCall("abdomen", detail, evidence="trunk section around the spine without lungs, skull or pelvic bone"), m
    return None, m


def _central_band(body: np.ndarray, half_width: float) -> np.ndarray:
    cols = np.flatnonzero(body.any(axis=0))
    band = np.zeros(body.shape, bool)
    if cols.size:
        c, w = (cols.min() + cols.max()) / 2, cols.max() - cols.min() + 1
        band[:, int(max(c - half_width * w, 0)) : int(c + half_width * w) + 1] = True
    return band


def _airway_before_spine(air: np.ndarray, bone: np.ndarray, body: np.ndarray, g: Grid) -> bool:
    """A 0.4-7 cm^2 air column in the middle of the neck, anterior to (above, in canonical rows) a central bone."""
    band = _central_band(body, 0.2)
    spine = bone & band
    if spine.sum() < g.px2(50):
        return False
    spine_row = ndimage.center_of_mass(spine)[0]
    return any(ndimage.center_of_mass(a)[0] < spine_row for a in components(air & band, g.px2(40), g.px2(700)))


def _central_posterior_bone(bone: np.ndarray, body: np.ndarray) -> bool:
    """A vertebra: bone in the middle tenth of the body's width, in its posterior half."""
    rows = np.flatnonzero(body.any(axis=1))
    if not rows.size or not bone.any():
        return False
    band = _central_band(body, 0.06)
    posterior = np.zeros(body.shape, bool)
    posterior[(rows.min() + rows.max()) // 2 :, :] = True  # rows run toward posterior in canonical slices
    return bool((bone & band & posterior).sum() >= 4)


def _limb_like(part: np.ndarray, bone: np.ndarray, g: Grid) -> bool:
    """A cross-section under ~18 cm wide with bone near its centre (femur, tibia, humerus)."""
    cols = np.flatnonzero(part.any(axis=0))
    rows = np.flatnonzero(part.any(axis=1))
    if (cols.max() - cols.min() + 1) * g.coarse_mm > 180 or (rows.max() - rows.min() + 1) * g.coarse_mm > 180:
        return False
    b = bone & part
    if b.sum() < g.px2(50):
        return False
    cy, cx = ndimage.center_of_mass(part)
    by, bx = ndimage.center_of_mass(b)
    size = max(cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)
    return bool(np.hypot(by - cy, bx - cx) < 0.3 * size)


def _pelvic_bone(bone: np.ndarray, body: np.ndarray, g: Grid) -> bool:
    """Iliac wings, acetabula or femoral heads: >= 6 cm^2 of thick bone on each side, lateral to the spine."""
    thick = ndimage.binary_opening(bone, structure=disk(g.px(3.0)))
    if not thick.any():
        return False
    cols = np.flatnonzero(body.any(axis=0))
    c, w = (cols.min() + cols.max()) / 2, cols.max() - cols.min() + 1
    xs = np.arange(body.shape[1])
    left, right = xs < c - 0.15 * w, xs > c + 0.15 * w
    need = g.px2(600)
    return bool(thick[:, left].sum() >= need and thick[:, right].sum() >= need)


def read(inp: ExpertInput) -> Reading:
    if not inp.physical or float(np.min(inp.values)) > -100:
        # every CT slice of a patient holds air or fat (< -100 HU); display grey levels (a PNG) or raw stored
        # values without their rescale hold none
        return Reading(note="CT expert: the values are not Hounsfield units (no air or fat below -100)")
    return analyse(inp.values, inp.px_mm, inp.organ)


def analyse(values: np.ndarray, px_mm: float = 1.0, organ: str | None = None) -> Reading:
    """Every region of one axial CT slice in HU (``px_mm``: mm per pixel, 1.0 when unknown)."""
    g = Grid.for_image(values.shape, px_mm)
    v = g.down(values)
    body = body_mask_coarse(v, g)
    if not body.any():
        return Reading(note="no body: nothing above -500 HU forms a patient-sized object")
    smooth = ndimage.gaussian_filter(v, max(g.px(1.5), 0.5))
    cut = _lung_cut_by_field_of_view(v, smooth, g)
    if cut.any():  # a cropped chest: lung parenchyma runs out of the image, it is still inside the patient
        body = body | cut
    # the skin is not eroded where the image edge cuts the body (a cropped field of view)
    inner = ndimage.binary_erosion(body, structure=disk(g.px(4.0)), border_value=1)
    bone = body & (smooth >= 200)
    bone = ndimage.binary_opening(bone, structure=disk(g.px(1.0))) if g.px(1.0) >= 1 else bone
    bone = union(components(bone, g.px2(20)), bone.shape)
    # marrow cavities (>= 100 HU) are bone; the spinal canal and the skull's content (soft tissue) are not
    bone |= fill_small_holes(bone, g.px2(1500)) & (smooth >= 100)
    intracranial, skull_share = _skull(bone, body, smooth, g)

    gas = inner & (smooth < -400)
    gas_parts = components(gas, g.px2(20))
    head_like = skull_share >= 0.2
    lung_parts = [] if head_like else [c for c in gas_parts if c.sum() >= g.px2(400)]
    lung = ndimage.binary_fill_holes(union(lung_parts, body.shape)) if lung_parts else np.zeros_like(body)
    air = union([c for c in gas_parts if not (c & lung).any()], body.shape)
    near_air = ndimage.binary_dilation(gas | ~body, structure=disk(max(g.px(2.0), 1)))
    fat = body & (smooth >= -190) & (smooth <= -30) & ~near_air
    fat = union(components(fat, g.px2(25)), body.shape)

    region, measures = _region(g, body, lung, bone, air, fat, skull_share, organ)
    coarse: dict[str, np.ndarray] = {"body": body}
    for name, mask in (("lung", lung), ("air", air), ("bone", bone), ("fat", fat)):
        if mask.any():
            coarse[name] = mask
    if region is not None and region.region == "abdomen" and not _cropped(body):
        coarse.update(_abdominal_organs(g, smooth, inner, bone, body, float(lung.sum()) / float(body.sum())))
    masks = {name: g.up(m, smooth=True) for name, m in coarse.items()}
    masks = {name: m for name, m in masks.items() if m.any()}
    note = "" if region is not None else "body region not determinable from this slice"
    return Reading(masks=masks, region=region, measurements=measures, note=note)


def _lung_cut_by_field_of_view(v: np.ndarray, smooth: np.ndarray, g: Grid) -> np.ndarray:
    """Air-density areas that touch the image edge but measure like lung (median above -950 HU; air
    outside a patient measures -1000), at least 1 cm^2: lung cut by a tight field of view."""
    out = np.zeros(v.shape, bool)
    for c in components(smooth < -400, g.px2(100)):
        ys, xs = np.nonzero(c)
        if ys.min() > 0 and xs.min() > 0 and ys.max() < v.shape[0] - 1 and xs.max() < v.shape[1] - 1:
            continue
        inside = v[c]
        inside = inside[inside > -1100]  # padding outside the reconstruction circle (-2000, -3024)
        if inside.size and float(np.median(inside)) > -950:
            out |= c
    return out


def _abdominal_organs(g: Grid, smooth: np.ndarray, inner: np.ndarray, bone: np.ndarray, body: np.ndarray,
                      lung_share: float) -> dict[str, np.ndarray]:
    """Liver and kidneys by portal-venous HU and position (only asked on abdominal slices with the whole body in view)."""
    out: dict[str, np.ndarray] = {}
    near_bone = ndimage.binary_dilation(bone, structure=disk(g.px(3.0)))
    enh = inner & (smooth >= 110) & (smooth < 200) & ~near_bone
    enh = ndimage.binary_opening(enh, structure=disk(g.px(2.0)))
    kidneys = [c for c in components(enh, g.px2(150), g.px2(12000)) if _compact(c)]
    if kidneys and lung_share < 0.05:
        out["kidney"] = union(kidneys, body.shape)
    soft = inner & (smooth >= 53) & (smooth <= 85)
    soft = ndimage.binary_opening(soft, structure=disk(g.px(3.0)))
    cols = np.flatnonzero(body.any(axis=0))
    mid = (cols.min() + cols.max()) / 2.0
    if lung_share < 0.30:
        # the patient's right is the image's LEFT in canonical (LPS) arrays
        for part in components(soft, g.px2(1500)):
            if np.nonzero(part)[1].mean() < mid:
                out["liver"] = ndimage.binary_fill_holes(ndimage.binary_closing(part, structure=disk(g.px(3.0))))
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
