"""Preview thumbnails with ROI outlines for the Dagster UI. Previews only: the dataset's images stay clean."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from medtrinity_assets.roi import rle

# outline colours by origin family: ground truth green, expert findings orange, anatomy blue, errors none
COLOURS = {"ground_truth": (40, 220, 90), "expert": (255, 150, 0), "anatomy": (70, 140, 255)}


def _colour(roi: dict[str, Any]) -> tuple[int, int, int]:
    if roi.get("kind") == "anatomy":
        return COLOURS["anatomy"]
    return COLOURS["ground_truth"] if roi.get("origin") == "ground_truth" else COLOURS["expert"]


def outline_image(grey_or_rgb: np.ndarray, rois: list[dict[str, Any]]) -> np.ndarray:
    """RGB copy of the image with a 1-pixel outline per ROI (findings drawn last, on top)."""
    img = grey_or_rgb
    rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3].copy()
    rgb = rgb.astype(np.uint8, copy=True)
    for roi in sorted(rois, key=lambda r: r.get("kind") != "anatomy"):
        if roi.get("status") != "ok" or not roi.get("mask_rle"):
            continue
        m = rle.decode(roi["mask_rle"])
        if m.shape != rgb.shape[:2]:
            continue
        edge = m & ~ndimage.binary_erosion(m)
        rgb[edge] = _colour(roi)
    return rgb


def contact_sheet(tiles: list[np.ndarray], tile: int = 256, columns: int = 3) -> np.ndarray:
    """Tiles (RGB) scaled to ``tile`` px on their longest side, laid out in a grid on black."""
    from PIL import Image

    if not tiles:
        return np.zeros((tile, tile, 3), np.uint8)
    rows = (len(tiles) + columns - 1) // columns
    sheet = np.zeros((rows * tile, min(columns, len(tiles)) * tile, 3), np.uint8)
    for i, t in enumerate(tiles):
        im = Image.fromarray(t)
        k = tile / max(im.size)  # small images are enlarged too, so 1-pixel outlines stay visible
        im = im.resize((max(1, round(im.size[0] * k)), max(1, round(im.size[1] * k))), Image.Resampling.NEAREST)
        a = np.asarray(im)
        r, c = divmod(i, columns)
        sheet[r * tile : r * tile + a.shape[0], c * tile : c * tile + a.shape[1]] = a
    return sheet


def write_preview(layout, partition: dict[str, str], images: list[dict[str, Any]], rois: list[dict[str, Any]],
                  limit: int = 6):
    """Outlines of the ``limit`` images with the most ROIs, as one PNG under ``previews/rois/``; None if no ROI."""
    from medtrinity_assets.roi.build import _png_array, encode_png
    from medtrinity_assets.storage import atomic_write_bytes

    by_sample: dict[str, list[dict[str, Any]]] = {}
    for r in rois:
        if r.get("status") == "ok":
            by_sample.setdefault(r["sample_id"], []).append(r)
    if not by_sample:
        return None
    image_by_id = {im["sample_id"]: im for im in images}
    # most findings first, then most ROIs; sample id breaks ties so the preview is stable
    ranked = sorted(by_sample, key=lambda s: (-sum(r.get("kind") == "finding" for r in by_sample[s]), -len(by_sample[s]), s))
    tiles = []
    for sid in ranked[:limit]:
        im = image_by_id.get(sid)
        if im is None:
            continue
        try:
            tiles.append(outline_image(_png_array(layout.resolve(im["image_path"])), by_sample[sid]))
        except OSError:
            continue
    if not tiles:
        return None
    path = layout.preview_path("rois", partition)
    atomic_write_bytes(path, encode_png(contact_sheet(tiles)))
    return path
