"""A coarse working grid for the built-in experts: reference regions do not need every pixel.

Morphology on a 512 x 512 slice at 0.4 mm per pixel costs tens of milliseconds per operation, and a
3 mm opening there is a 15-pixel disk. The experts work on a block-averaged copy at about 1.5 mm
per pixel (at most ``max_side`` pixels a side), where the same operations cost a few milliseconds,
and bring their masks back to the image grid: nearest for reference regions (``up``), linear
interpolation of the mask for outlines a person looks at (``up(smooth=True)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Grid:
    shape: tuple[int, int]  # the image grid
    factor: int  # image pixels per coarse pixel, along each axis
    px_mm: float  # mm per IMAGE pixel (1.0 when unknown)

    @classmethod
    def for_image(cls, shape: tuple[int, int], px_mm: float, target_mm: float = 1.5, max_side: int = 256,
                  min_side: int = 64) -> Grid:
        """The largest integer factor that keeps coarse pixels near ``target_mm`` (and the grid within bounds)."""
        h, w = shape
        f = max(1, int(math.floor(target_mm / max(px_mm, 1e-6))))
        f = max(f, int(math.ceil(max(h, w) / max_side)))
        while f > 1 and min(h, w) / f < min_side:
            f -= 1
        return cls((int(h), int(w)), f, float(px_mm))

    @property
    def coarse_mm(self) -> float:
        return self.px_mm * self.factor

    def px(self, mm: float) -> float:
        """A length in coarse pixels."""
        return mm / self.coarse_mm

    def px2(self, mm2: float) -> float:
        """An area in coarse pixels."""
        return mm2 / (self.coarse_mm * self.coarse_mm)

    def down(self, values: np.ndarray, mean: bool = True) -> np.ndarray:
        """Block mean (edges padded by repetition), float32; ``mean=False``: every ``factor``-th pixel (for a
        threshold hundreds of units from the tissue it separates, e.g. the body at -500 HU, a sample will do)."""
        v = np.asarray(values, dtype=np.float32)
        f = self.factor
        if f == 1:
            return v
        h, w = v.shape[:2]
        ph, pw = (-h) % f, (-w) % f
        if not mean:  # the middle pixel of each block (the last, partial block: its last pixel)
            o = f // 2
            rows = np.minimum(np.arange(o, h + ph, f), h - 1)
            cols = np.minimum(np.arange(o, w + pw, f), w - 1)
            return v[rows[:, None], cols[None, :]]
        if ph or pw:
            v = np.pad(v, ((0, ph), (0, pw)) + ((0, 0),) * (v.ndim - 2), mode="edge")
        H, W = v.shape[0] // f, v.shape[1] // f
        return v.reshape(H, f, W, f, *v.shape[2:]).mean(axis=(1, 3), dtype=np.float32)

    def up(self, mask: np.ndarray, smooth: bool = False) -> np.ndarray:
        """A coarse mask on the image grid: block copies, or (``smooth``) the mask interpolated and cut at 0.5."""
        f = self.factor
        h, w = self.shape
        if f == 1:
            return mask.astype(bool, copy=False)
        if smooth:
            up = ndimage.zoom(mask.astype(np.float32), f, order=1, mode="nearest", grid_mode=True, prefilter=False)
            return up[:h, :w] >= 0.5
        return np.repeat(np.repeat(mask.astype(bool, copy=False), f, axis=0), f, axis=1)[:h, :w]


def disk(radius_px: float) -> np.ndarray:
    r = max(int(round(radius_px)), 1)
    yy, xx = np.ogrid[-r : r + 1, -r : r + 1]
    return xx * xx + yy * yy <= r * r


def components(mask: np.ndarray, min_px: float = 0, max_px: float = math.inf) -> list[np.ndarray]:
    """Connected components (8-connected) with ``min_px <= size <= max_px``, largest first."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    sizes = np.bincount(lab.ravel())[1:]
    order = np.argsort(-sizes, kind="stable")
    return [lab == i + 1 for i in order if min_px <= sizes[i] <= max_px]


def largest(mask: np.ndarray, keep_ratio: float = 0.0) -> np.ndarray:
    """Largest component, plus any component at least ``keep_ratio`` of its size."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask.astype(bool)
    sizes = np.bincount(lab.ravel())[1:]
    big = sizes.max()
    keep = np.flatnonzero(sizes >= (keep_ratio * big if keep_ratio > 0 else big)) + 1
    lut = np.zeros(n + 1, bool)
    lut[keep] = True
    return lut[lab]


def union(masks: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    for m in masks:
        out |= m
    return out


def fill_small_holes(mask: np.ndarray, max_px: float) -> np.ndarray:
    """Fill the holes of ``mask`` up to ``max_px`` pixels (a marrow cavity, not what a skull encloses)."""
    holes = ndimage.binary_fill_holes(mask) & ~mask
    if not holes.any():
        return mask
    return mask | union(components(holes, 0, max_px), mask.shape)
