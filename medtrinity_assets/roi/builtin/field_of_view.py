"""Built-in field-of-view expert: where the image holds data, versus background and annotation overlays.

Scope: ultrasound (US), photographs of the eye fundus, skin or endoscopy, whole-slide and microscopy
histology, and other 2D images without physical units. Two kinds of background:

- dark frame (ultrasound, fundus, endoscopy; any image whose border is mostly black): the field of
  view is the largest bright region once thin strokes are opened away -- the ultrasound sector or
  rectangle, the fundus disc. Everything non-black outside it (burned-in text, calipers, colour bars,
  markers) is **annotation overlay**: measured, never an ROI (it is not anatomy and must not be
  described as a finding);
- light background (histology, or an image whose border is mostly white): the field of view is the
  tissue -- everything but large, flat, near-white areas (glass, lumens, tears).

Label: ``field of view`` (histology: ``tissue``); it is the frame ROI positions are measured in, not an
organ. Measurements: ``field_of_view_fraction``, ``annotation_overlay_fraction`` and the overlay's
bounding box (normalised xyxy) when there is one.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medtrinity_assets.roi.builtin import ExpertInput, Reading
from medtrinity_assets.roi.builtin.grid import Grid, components, disk, largest, union

LIGHT_BACKGROUND = frozenset({"HISTO", "HISTOLOGY", "SM", "PATHOLOGY", "GM"})  # GM: general microscopy
DARK_BACKGROUND = frozenset({"US", "FUNDUS", "OP", "XC", "ES", "ENDOSCOPY", "IVUS"})


def read(inp: ExpertInput) -> Reading:
    lum = inp.values.astype(np.float32)
    if inp.rgb is None and lum.max() > 255:  # physical values: scale to grey levels first
        lo, hi = np.percentile(lum, [1, 99])
        lum = np.clip((lum - lo) / max(hi - lo, 1e-6) * 255, 0, 255)
    g = Grid.for_image(lum.shape, 1.0, target_mm=max(lum.shape) / 384, max_side=384)
    v = g.down(lum)
    modality = inp.modality.upper()
    light = modality in LIGHT_BACKGROUND or (modality not in DARK_BACKGROUND and _border_is_light(v))
    if light:
        fov = _tissue(v, g.down(inp.rgb.astype(np.float32)) if inp.rgb is not None else None)
        name = "tissue"
        overlay = np.zeros_like(fov)
    else:
        fov, overlay = _dark_frame(v)
        name = "field of view"
    if fov is None or not fov.any():
        return Reading(note="no field of view: the image holds no region distinct from its background")
    measures: dict[str, object] = {"field_of_view_fraction": round(float(fov.mean()), 3)}
    if not light:
        measures["annotation_overlay_fraction"] = round(float(overlay.mean()), 4)
        if overlay.any():
            ys, xs = np.nonzero(overlay)
            h, w = overlay.shape
            measures["annotation_overlay_bbox"] = [round(xs.min() / w, 4), round(ys.min() / h, 4),
                                                   round((xs.max() + 1) / w, 4), round((ys.max() + 1) / h, 4)]
    return Reading(masks={name: g.up(fov, smooth=True)}, measurements=measures)


def _border_is_light(v: np.ndarray) -> bool:
    border = np.concatenate([v[0], v[-1], v[:, 0], v[:, -1]])
    return float(np.median(border)) > 200


def _dark_frame(v: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Largest bright region after opening away strokes (lines of text are under ~4 % of the image's side tall)."""
    lit = v > 12
    if not lit.any():
        return None, lit
    r = max(2, int(round(0.02 * max(v.shape))))
    body = ndimage.binary_opening(lit, structure=disk(r))  # text blocks, calipers, thin lines go
    body = ndimage.binary_closing(body, structure=disk(2))  # dark speckle inside the image comes back
    if not body.any():
        return None, lit
    fov = ndimage.binary_fill_holes(largest(body))
    overlay = lit & ~ndimage.binary_dilation(fov, structure=disk(1))
    overlay = union(components(overlay, 3), overlay.shape)
    return fov, overlay


def _tissue(v: np.ndarray, rgb: np.ndarray | None) -> np.ndarray:
    """Everything but flat near-white areas of at least ~0.2 % of the image (glass, lumens)."""
    mean = ndimage.uniform_filter(v, 5)
    sq = ndimage.uniform_filter(v * v, 5)
    std = np.sqrt(np.maximum(sq - mean * mean, 0))
    white = (mean > 228) & (std < 6)
    if rgb is not None:  # a stain is coloured: near-white AND unsaturated
        sat = rgb.max(axis=-1) - rgb.min(axis=-1)
        white &= ndimage.uniform_filter(sat, 5) < 18
    white = ndimage.binary_opening(white, structure=disk(2))
    white = union(components(white, 0.002 * v.size), v.shape)
    return ~white
