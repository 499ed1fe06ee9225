"""Perceptual hashes: near-duplicate and train/eval leakage detection survive resizing and re-encoding."""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image


def phash_hex(image: np.ndarray | Image.Image) -> str:
    """64-bit DCT perceptual hash of an 8-bit image (grey or RGB) as 16 hex characters."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image))
    return str(imagehash.phash(img))


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes of equal length."""
    if len(a) != len(b):
        raise ValueError(f"hashes differ in length: {a!r} vs {b!r}")
    return (int(a, 16) ^ int(b, 16)).bit_count()
