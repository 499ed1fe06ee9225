"""Resizing that keeps the aspect ratio.

Images are only made smaller by default: the longest side becomes at most ``max_side``; upscaling
adds no information and multiplies storage. Display images and values are filtered (antialiased);
label maps use nearest neighbour so that no new label values appear.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

DEFAULT_MAX_SIDE = 512


def target_size(h: int, w: int, max_side: int = DEFAULT_MAX_SIDE, *, upscale: bool = False) -> tuple[int, int]:
    """(new_h, new_w) with the longest side = max_side (or unchanged when already smaller)."""
    if max_side <= 0:
        raise ValueError(f"max_side must be positive, got {max_side}")
    longest = max(h, w)
    if longest <= max_side and not upscale:
        return h, w
    s = max_side / float(longest)
    return max(1, int(round(h * s))), max(1, int(round(w * s)))


def resize_values(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Float 2D array (or HxWx3 uint8) to ``size`` with an antialiasing filter."""
    h, w = size
    if values.shape[:2] == (h, w):
        return values
    if values.ndim == 3:  # RGB uint8
        img = Image.fromarray(np.ascontiguousarray(values.astype(np.uint8)))
        return np.asarray(img.resize((w, h), Image.Resampling.LANCZOS))
    img = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32))
    # Pillow widens the filter support when shrinking, so BILINEAR is an area-aware (antialiased) filter
    return np.asarray(img.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)


def resize_labels(label_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of a 2D integer map (sample at each output pixel's centre)."""
    h, w = size
    H, W = label_map.shape[:2]
    if (H, W) == (h, w):
        return label_map
    rows = np.minimum(((np.arange(h) + 0.5) * H / h).astype(np.intp), H - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * W / w).astype(np.intp), W - 1)
    return label_map[rows[:, None], cols[None, :]]


def resize_image(
    image: np.ndarray, max_side: int = DEFAULT_MAX_SIDE, *, is_label: bool = False, upscale: bool = False
) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize keeping the aspect ratio; returns the array and the (row, col) scale new/old."""
    h, w = image.shape[:2]
    size = target_size(h, w, max_side, upscale=upscale)
    out = resize_labels(image, size) if is_label else resize_values(image, size)
    return out, (size[0] / h, size[1] / w)
