"""ReadItem -> 2D images: the one place where 3D becomes 2D, values become grey levels and sizes shrink.

Order per slice: resize the physical values (antialiased), then window them, so the PNG and the
``values`` array share one grid and the ROI stage can measure HU on exactly the pixels it shows.
One window is chosen per item so all slices of a volume are displayed alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medtrinity_assets.formats.base import MAX_LABEL_VALUE, ReadError, ReadItem
from medtrinity_assets.preprocess.phash import phash_hex
from medtrinity_assets.preprocess.resize import DEFAULT_MAX_SIDE, resize_labels, resize_values, target_size
from medtrinity_assets.preprocess.slice_selection import finding_labels, label_presence, neighbours, select_slices
from medtrinity_assets.preprocess.windowing import RGB_WINDOW, Window, apply_window, choose_window, rgb_passthrough


@dataclass
class SliceImage:
    image: np.ndarray  # uint8 HxW (grey) or HxWx3 (RGB)
    values: np.ndarray | None  # float32 HxW physical values on the image grid; None for RGB
    label_map: np.ndarray | None  # integer HxW on the image grid, or None
    boxes: list[dict[str, Any]]  # {"label": str, "bbox": [x0, y0, x1, y1] normalised 0..1}
    slice_index: int  # -1 for 2D inputs
    n_slices: int
    neighbours: list[int]
    orig_size: tuple[int, int]  # (h, w) before resizing
    spacing: tuple[float, float]  # (row_mm, col_mm) on the image grid; NaN when unknown
    window_name: str
    window_center: float
    window_width: float
    phash: str
    extra: dict[str, Any] = field(default_factory=dict)


def _in_plane_spacing(item: ReadItem) -> tuple[float, float]:
    sp = tuple(float(s) for s in (item.spacing or ()))
    return (sp[-2], sp[-1]) if len(sp) >= 2 else (math.nan, math.nan)


def _normalised_boxes(boxes: list[dict[str, Any]], h: int, w: int, slice_index: int) -> list[dict[str, Any]]:
    """Pixel xyxy boxes of the original grid -> normalised xyxy (unchanged by an aspect-keeping resize)."""
    out = []
    for b in boxes:
        if "slice" in b and int(b["slice"]) != slice_index:
            continue
        x0, y0, x1, y1 = (float(v) for v in b["bbox"])
        nb = [max(0.0, x0 / w), max(0.0, y0 / h), min(1.0, x1 / w), min(1.0, y1 / h)]
        if nb[2] <= nb[0] or nb[3] <= nb[1]:
            continue  # empty or outside the image
        box = {k: v for k, v in b.items() if k not in ("bbox", "slice")}
        box["label"] = str(b.get("label", ""))
        box["bbox"] = [round(v, 6) for v in nb]
        out.append(box)
    return out


def _finite(pixels: np.ndarray, what: str) -> np.ndarray:
    """float32 copy with NaN/inf replaced by the minimum finite value; all-NaN is an unusable input."""
    arr = np.asarray(pixels, dtype=np.float32)
    ok = np.isfinite(arr)
    if not ok.any():
        raise ReadError("all_nan", f"{what} holds no finite value (all NaN/inf); re-export the image")
    if not ok.all():
        arr = np.where(ok, arr, np.float32(arr[ok].min()))
    return arr


def _check_label_shape(item: ReadItem, spatial: tuple[int, ...]) -> np.ndarray | None:
    if item.label_map is None:
        return None
    lm = np.asarray(item.label_map)
    if lm.shape != spatial:
        raise ReadError(
            "label_shape_mismatch",
            f"label map shape {lm.shape} differs from image shape {spatial}; the label file does not belong to this image",
        )
    if lm.dtype.kind == "f":
        lm = np.rint(np.nan_to_num(lm)).astype(np.int64)
    if lm.dtype.kind not in "iub":
        raise ReadError("bad_label_map", f"label map has data type {lm.dtype}; labels must be integers")
    if lm.size:
        lo, hi = int(lm.min()), int(lm.max())
        if lo < 0:
            raise ReadError("bad_label_map", f"label map holds the negative value {lo}; labels must be >= 0")
        if hi > MAX_LABEL_VALUE:
            raise ReadError("label_value_too_large", f"label map holds the value {hi}, above {MAX_LABEL_VALUE:,}: "
                            "label images are 16-bit; renumber the labels 1..N")
    return lm


def _one_slice(
    values: np.ndarray | None,
    rgb: np.ndarray | None,
    label: np.ndarray | None,
    window: Window,
    max_side: int,
    spacing: tuple[float, float],
    boxes: list[dict[str, Any]],
    slice_index: int,
    n_slices: int,
    nbrs: list[int],
) -> SliceImage:
    src = rgb if rgb is not None else values
    h, w = src.shape[:2]
    size = target_size(h, w, max_side)
    if rgb is not None:
        image = resize_values(rgb, size)
        vals = None
    else:
        vals = resize_values(values, size)
        image = apply_window(vals, window)
    lab = resize_labels(label, size) if label is not None else None
    sy, sx = size[0] / h, size[1] / w
    return SliceImage(
        image=np.ascontiguousarray(image),
        values=vals,
        label_map=lab,
        boxes=_normalised_boxes(boxes, h, w, slice_index),
        slice_index=slice_index,
        n_slices=n_slices,
        neighbours=nbrs,
        orig_size=(h, w),
        spacing=(spacing[0] / sy, spacing[1] / sx),
        window_name=window.name,
        window_center=window.center,
        window_width=window.width,
        phash=phash_hex(image),
    )


def _is_rgb(item: ReadItem, px: np.ndarray) -> bool:
    """HxWx3/4 colour: flagged by the reader, or a last axis of 3-4 that no real volume has."""
    if px.ndim != 3 or px.shape[-1] not in (3, 4):
        return False
    return item.modality_is_rgb or (px.shape[0] > 4 and px.shape[1] > 4)


def item_to_slices(
    item: ReadItem,
    *,
    max_side: int = DEFAULT_MAX_SIDE,
    context_slices: int = 3,
    organ: str | None = None,
) -> list[SliceImage]:
    """Turn one decoded item into its 2D images (see module doc). Raises ReadError for unusable data."""
    px = np.asarray(item.pixels)
    organ = organ or item.organ
    spacing = _in_plane_spacing(item)
    if px.ndim == 3 and px.shape[-1] == 1:  # (H, W, 1) grey with a channel axis
        px = px[..., 0]
    if px.ndim == 4 and px.shape[-1] in (3, 4):  # colour frames (US cine, video): evenly spaced frames
        n = px.shape[0]
        rgb_label = _check_label_shape(item, px.shape[:3])
        frames = select_slices(n, None, context_slices)
        return [
            _one_slice(None, rgb_passthrough(_finite(px[z], "RGB frame")), rgb_label[z] if rgb_label is not None else None,
                       RGB_WINDOW, max_side, spacing, item.boxes, z, n, neighbours(z, n))
            for z in frames
        ]
    if _is_rgb(item, px):
        label = _check_label_shape(item, px.shape[:2])
        rgb = rgb_passthrough(_finite(px, "RGB image"))
        return [_one_slice(None, rgb, label, RGB_WINDOW, max_side, spacing, item.boxes, -1, 1, [])]
    if px.ndim == 2:
        values = _finite(px, "image")
        label = _check_label_shape(item, px.shape)
        window = choose_window(values, item.modality, organ)
        return [_one_slice(values, None, label, window, max_side, spacing, item.boxes, -1, 1, [])]
    if px.ndim != 3:
        raise ReadError("bad_shape", f"pixel array has shape {px.shape}; expected (H,W), (H,W,3) or (Z,H,W)")
    volume = _finite(px, "volume")
    n = volume.shape[0]
    label = _check_label_shape(item, volume.shape)
    window = choose_window(volume, item.modality, organ)
    wanted, table = None, None
    if label is not None:
        table = label_presence(label)
        present = {int(v) for v in np.flatnonzero(table.any(axis=0)) if v != 0}
        wanted = finding_labels(item.label_names, present) if present else None
    chosen = select_slices(n, label, context_slices, wanted, presence=table)
    return [
        _one_slice(
            volume[z], None, label[z] if label is not None else None, window, max_side, spacing,
            item.boxes, z, n, neighbours(z, n),
        )
        for z in chosen
    ]
