"""Decoded DICOM pixels plus their geometry -> one canonical :class:`~medtrinity_assets.formats.base.ReadItem`.

A volume's ground truth (SEG/RTSTRUCT) is rasterised on the image's native grid first, then both
go through the same reorientation -- so the labels stay on their voxels. The reorientation itself
is the shared affine path (:mod:`medtrinity_assets.formats.orientation`); a single plane follows
the 2D display rule instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from medtrinity_assets.formats.base import ReadError, ReadItem
from medtrinity_assets.formats.dicom import ground_truth
from medtrinity_assets.formats.dicom.geometry import (
    ImageGrid,
    first_positive,
    float_or_nan,
    patient_orientation_letters,
    pixel_spacing,
    plane_affine,
    vec,
)
from medtrinity_assets.formats.orientation import (
    CANONICAL_TOWARD,
    GeometryError,
    apply_display_2d,
    axis_letters,
    display_2d,
    obliquity_deg,
    reorientation,
)

OBLIQUE_NOTE_DEG = 1.0  # tilts below this are scanner rounding, not an oblique acquisition


def finish_volume(vol: np.ndarray, ds: Dataset, meta: dict[str, Any], grid: ImageGrid | None,
                  gt: dict[str, list[str]]) -> ReadItem:
    """A (Z, H, W) stack in native order -> canonical volume (or a 2D item when Z is 1)."""
    label_map, label_names = ground_truth_maps(grid, gt)
    modality = str(ds.get("Modality") or "")
    thickness = float_or_nan(ds.get("SliceThickness"))
    if grid is None:
        # no patient geometry: keep the stored order; in-plane spacing if the header has it
        ps = pixel_spacing(ds)
        z = float_or_nan(ds.get("SpacingBetweenSlices"))
        if vol.shape[0] == 1:
            return finish_2d(vol[0], ds, meta, label_map[0] if label_map is not None else None, label_names)
        return ReadItem(pixels=vol, modality=modality, spacing=(z, ps[0], ps[1]), slice_thickness=thickness,
                        meta=meta, label_map=label_map, label_names=label_names)
    if vol.shape[0] == 1:
        return finish_2d(vol[0], ds, meta, label_map[0] if label_map is not None else None, label_names,
                         dirs=(grid.col_dir, grid.row_dir))
    dz = grid.slice_spacing()
    if not np.isfinite(dz) or dz <= 0:
        dz = first_positive(float_or_nan(ds.get("SpacingBetweenSlices")), thickness)
    affine = grid.affine(dz)
    try:
        turn = reorientation(affine)
    except GeometryError as exc:
        raise ReadError("impossible_geometry", f"the slices' orientation and positions give no usable geometry "
                        f"({exc}); re-export the series") from None
    in_plane = pixel_spacing(ds)  # NaN when the header does not say (the grid then assumed 1 mm)
    spacing = turn.order([dz, in_plane[0], in_plane[1]])
    vol = turn.apply(vol)
    if label_map is not None:
        label_map = turn.apply(label_map)
    obliquity = max(obliquity_deg(affine))
    if obliquity > OBLIQUE_NOTE_DEG:
        meta["oblique_deg"] = round(obliquity, 1)
    return ReadItem(pixels=np.ascontiguousarray(vol, dtype=np.float32), modality=modality,
                    spacing=tuple(float(s) for s in spacing), col_toward=CANONICAL_TOWARD[2],
                    row_toward=CANONICAL_TOWARD[1], slice_toward=CANONICAL_TOWARD[0], slice_thickness=thickness,
                    meta=meta, label_map=None if label_map is None else np.ascontiguousarray(label_map),
                    label_names=label_names)


def finish_2d(img: np.ndarray, ds: Dataset, meta: dict[str, Any], label_map: np.ndarray | None,
              label_names: dict[int, str] | None, dirs: tuple[np.ndarray, np.ndarray] | None = None) -> ReadItem:
    """One plane in the radiological display: its directions from ImageOrientationPatient (or the
    grid), else PatientOrientation (radiographs), else unknown ('')."""
    modality = str(ds.get("Modality") or "")
    spacing = pixel_spacing(ds)
    if dirs is None and "ImageOrientationPatient" in ds:
        iop = vec(ds.ImageOrientationPatient)
        dirs = (iop[3:], iop[:3])
    letters: tuple[str, str] | None = None
    if dirs is not None:
        try:
            letters = axis_letters(plane_affine(row_dir=dirs[1], col_dir=dirs[0]))[:2]  # type: ignore[assignment]
        except GeometryError:
            letters = None
    else:
        letters = patient_orientation_letters(ds)
    row_toward = col_toward = ""
    if letters is not None:
        transpose, flip_rows, flip_cols, (row_toward, col_toward) = display_2d(*letters)
        img = apply_display_2d(img, transpose, flip_rows, flip_cols)
        if label_map is not None:
            label_map = apply_display_2d(label_map, transpose, flip_rows, flip_cols)
        if transpose:
            spacing = (spacing[1], spacing[0])
    return ReadItem(pixels=np.ascontiguousarray(img, dtype=np.float32), modality=modality,
                    spacing=(float(spacing[0]), float(spacing[1])), col_toward=col_toward,
                    row_toward=row_toward, slice_thickness=float_or_nan(ds.get("SliceThickness")), meta=meta,
                    label_map=None if label_map is None else np.ascontiguousarray(label_map),
                    label_names=dict(label_names or {}))


def ground_truth_maps(grid: ImageGrid | None, gt: dict[str, list[str]]):
    """SEG and RTSTRUCT files rasterised on the native grid and merged: (label map, names)."""
    paths_seg = gt.get("seg", [])
    paths_rt = gt.get("rtstruct", [])
    if not paths_seg and not paths_rt:
        return None, {}
    if grid is None:
        raise ReadError("gt_without_geometry", "the image has no patient geometry (position/orientation), "
                        "so its SEG/RTSTRUCT cannot be placed on it")
    parts = []
    for p in paths_seg:
        try:
            lm, names, _ = ground_truth.seg_to_label_map(pydicom.dcmread(p, force=True), grid)
        except Exception as exc:  # noqa: BLE001
            detail = exc if isinstance(exc, ground_truth.GroundTruthError) else type(exc).__name__
            raise ReadError("seg_unreadable", f"its SEG cannot be placed on the images: {detail}") from None
        parts.append((lm, names))
    for p in paths_rt:
        try:
            lm, names, _ = ground_truth.rtstruct_to_label_map(pydicom.dcmread(p, force=True), grid)
        except Exception as exc:  # noqa: BLE001
            raise ReadError("rtstruct_unreadable", f"its RTSTRUCT cannot be rasterised ({type(exc).__name__})") from None
        parts.append((lm, names))
    return ground_truth.merge_label_maps(parts)
