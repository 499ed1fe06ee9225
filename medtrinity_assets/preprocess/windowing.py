"""Intensity windows: how physical values become 8-bit grey levels.

CT is in Hounsfield units, so fixed presets (centre/width) show each tissue the same way in every
image. MR and other modalities have no absolute scale: a percentile stretch computed once per item
(never per slice, so neighbouring slices of a volume stay comparable). RGB images pass through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (centre, width) in HU; common radiology reading windows.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "lung": (-600.0, 1500.0),
    "abdomen": (50.0, 400.0),
    "bone": (400.0, 1800.0),
    "soft_tissue": (40.0, 400.0),
}

# organ / body-part words -> CT preset; anything else gets soft_tissue
_ORGAN_PRESET = {
    "brain": "brain", "head": "brain", "skull": "brain", "neuro": "brain",
    "lung": "lung", "lungs": "lung", "chest": "lung", "thorax": "lung", "pulmonary": "lung",
    "abdomen": "abdomen", "liver": "abdomen", "kidney": "abdomen", "spleen": "abdomen",
    "pancreas": "abdomen", "pelvis": "abdomen", "colon": "abdomen", "abdominal": "abdomen",
    "bone": "bone", "spine": "bone", "skeleton": "bone", "vertebra": "bone",
}

PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class Window:
    name: str  # e.g. "ct:lung(-600/1500)", "percentile(0.5-99.5)", "rgb"
    center: float
    width: float


def ct_window(preset: str) -> Window:
    if preset not in CT_PRESETS:
        raise ValueError(f"unknown CT window preset {preset!r}; known: {', '.join(CT_PRESETS)}")
    c, w = CT_PRESETS[preset]
    return Window(f"ct:{preset}({c:g}/{w:g})", c, w)


def preset_for(organ: str | None, modality: str | None) -> Window | None:
    """The CT preset for an organ (words like 'Chest', 'liver', 'HEAD' are matched); None unless CT."""
    if (modality or "").upper() != "CT":
        return None
    words = (organ or "").lower().replace("_", " ").replace("-", " ").split()
    for word in words:
        if word in _ORGAN_PRESET:
            return ct_window(_ORGAN_PRESET[word])
    return ct_window("soft_tissue")


def percentile_window(values: np.ndarray, lo: float = PERCENTILES[0], hi: float = PERCENTILES[1]) -> Window:
    """Centre/width spanning the lo..hi percentiles of the finite values (sub-sampled for big volumes)."""
    flat = values[np.isfinite(values)].ravel()
    if flat.size == 0:
        raise ValueError("no finite values to compute a window from")
    if flat.size > 2_000_000:
        flat = flat[:: flat.size // 2_000_000 + 1]
    a, b = (float(x) for x in np.percentile(flat, [lo, hi]))
    if b <= a:  # flat image: any width shows it as one grey
        b = a + 1.0
    return Window(f"percentile({lo:g}-{hi:g})", (a + b) / 2.0, b - a)


def looks_like_hu(values: np.ndarray) -> bool:
    """True when the data hold values only a HU scale has (air/fat below -200 or dense bone above 255).

    Guards against a CT-labelled 8-bit screenshot being windowed as if it were HU."""
    if values.size == 0:
        return False
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    return (np.isfinite(lo) and lo < -200.0) or (np.isfinite(hi) and hi > 255.0)


def choose_window(values: np.ndarray, modality: str | None, organ: str | None) -> Window:
    """One window for a whole item: CT preset when the values are HU, else a percentile stretch."""
    preset = preset_for(organ, modality)
    if preset is not None and looks_like_hu(values):
        return preset
    return percentile_window(values)


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Map values linearly so centre-width/2 -> 0 and centre+width/2 -> 255; NaN -> 0."""
    lo = window.center - window.width / 2.0
    scaled = (np.asarray(values, dtype=np.float32) - np.float32(lo)) * np.float32(255.0 / window.width)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def rgb_passthrough(pixels: np.ndarray) -> np.ndarray:
    """RGB(A) 0..255 -> uint8 HxWx3 (alpha dropped)."""
    arr = np.asarray(pixels)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"expected an HxWx3 RGB array, got shape {arr.shape}")
    arr = np.nan_to_num(arr[..., :3].astype(np.float32), nan=0.0)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


RGB_WINDOW = Window("rgb", float("nan"), float("nan"))
