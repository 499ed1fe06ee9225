"""Bytes for the content-addressed store: PNG for images and label maps, .npy for values.

Pillow writes no timestamp into PNGs, so the same array always gives the same bytes (and the same
content address)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_png(image: np.ndarray) -> bytes:
    """8-bit grey (HxW) or RGB (HxWx3) uint8 -> PNG bytes."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"encode_png wants uint8, got {arr.dtype}")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise ValueError(f"encode_png wants HxW or HxWx3, got shape {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def encode_label_png(label_map: np.ndarray) -> bytes:
    """Integer label map -> 8-bit PNG (values <= 255) or 16-bit PNG (<= 65535)."""
    arr = np.asarray(label_map)
    if arr.ndim != 2:
        raise ValueError(f"label map must be 2D, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise ValueError(f"label values must lie in 0..65535, got {arr.min()}..{arr.max()}")
    if not arr.size or arr.max() <= 255:
        img = Image.fromarray(np.ascontiguousarray(arr.astype(np.uint8)))
    else:
        img = Image.fromarray(np.ascontiguousarray(arr.astype(np.uint16)))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def encode_values(values: np.ndarray) -> bytes:
    """float32 array -> .npy bytes (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(values, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> array (uint8 grey/RGB, or uint16 for 16-bit label maps)."""
    with Image.open(io.BytesIO(data)) as img:
        if img.mode in ("I;16", "I;16B", "I"):
            return np.asarray(img).astype(np.uint16)
        return np.asarray(img)


def decode_values(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)
