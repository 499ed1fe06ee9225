"""The body (or imaged object) of any grey image: the frame every ROI's side and position are measured in.

CT: the patient above -500 HU (:func:`ct.body_mask`). Other modalities: above Otsu's threshold,
opened by ~3 mm, large parts kept, holes filled -- on a ~3 mm grid (at most 256 pixels a side),
then brought back: the frame's centre and extent need no finer outline.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medtrinity_assets.roi.builtin.grid import Grid, disk, largest


def body_mask(values: np.ndarray, modality: str, px_mm: float = 1.0, grid_mm: float = 3.0) -> np.ndarray:
    """The frame is found on a ``grid_mm`` grid: a frame needs the body's extent, not its every pixel."""
    if (modality or "").upper() == "CT":
        from medtrinity_assets.roi.builtin.ct import body_mask as ct_body

        return ct_body(values, px_mm, grid_mm)
    from skimage.filters import threshold_otsu

    g = Grid.for_image(values.shape, px_mm, target_mm=grid_mm)
    v = g.down(values)
    finite = v[np.isfinite(v)]
    if finite.size == 0 or finite.min() == finite.max():
        return np.zeros(values.shape, bool)
    fg = v > threshold_otsu(finite)
    fg = ndimage.binary_opening(fg, structure=disk(g.px(3.0)))
    if not fg.any():
        return np.zeros(values.shape, bool)
    return g.up(ndimage.binary_fill_holes(largest(fg, keep_ratio=0.3)))
