"""Pixel confirmation of a perceptual-hash match: is it the same picture, or only a similar one?

A 64-bit perceptual hash cannot tell two CT slices of different patients at the same level apart (the
demo phantoms of different patients share hashes at 0 bits). Re-packaged copies of one picture, though,
stay nearly identical pixel by pixel after resizing both to a small common grid; different patients do
not. The mean absolute difference of 32x32 grey thumbnails (0..1) decides, below a configurable limit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

THUMB = 32


@functools.lru_cache(maxsize=4096)
def _thumb(path: str) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L").resize((THUMB, THUMB), Image.BILINEAR), dtype=np.float32) / 255.0
    except (OSError, ValueError):
        return None


def thumbnail_mad(a: Path, b: Path) -> float:
    """Mean absolute difference of the two images' thumbnails; 1.0 when either cannot be read."""
    ta, tb = _thumb(str(a)), _thumb(str(b))
    if ta is None or tb is None:
        return 1.0
    return float(np.abs(ta - tb).mean())


def pixel_confirmer(root: Path, max_mad: float) -> Callable[[Mapping[str, Any], Mapping[str, Any]], bool]:
    """``confirm(row_a, row_b)`` for :func:`dedup.find_duplicates`, reading ``image_path`` under ``root``."""

    def confirm(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        pa, pb = a.get("image_path"), b.get("image_path")
        if not pa or not pb:
            return True  # nothing to look at: the hash decides
        return thumbnail_mad(Path(root) / pa, Path(root) / pb) <= max_mad

    return confirm
