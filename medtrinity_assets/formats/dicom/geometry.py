"""Where a DICOM image lies in the patient: plane positions per slice or frame, the stack they form
(:class:`ImageGrid`), and the affine of that stack.

The affine comes from highdicom (``create_affine_matrix_from_attributes``: DICOM's equation
C.7.6.2.1-1 for a stack of planes); :mod:`medtrinity_assets.formats.orientation` turns it into the
canonical layout with nibabel, exactly as for a NIfTI volume. Values are read through ``.get`` so
that a pydicom dataset and the scan's :class:`~.headers.Header` serve alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medtrinity_assets.formats.base import ReadError
from medtrinity_assets.formats.dicom.headers import functional_group_item
from medtrinity_assets.formats.dicom.validity import tag

GAP_FACTOR = 1.5  # a step this many times the series' usual spacing means slices are missing


def float_or_nan(v: Any) -> float:
    try:
        f = float(v)
        return f if np.isfinite(f) else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def first_positive(*values: float) -> float:
    for v in values:
        if np.isfinite(v) and v > 0:
            return float(v)
    return float("nan")


def vec(values: Any) -> np.ndarray:
    return np.asarray([float(v) for v in values], dtype=np.float64)


@dataclass
class ImageGrid:
    """Geometry of a stack of parallel image planes (the native order of a series).

    ``origins[k]`` is the patient position (mm) of the centre of pixel (row 0, col 0) of slice k;
    ``row_dir`` points along a row (increasing column index), ``col_dir`` down a column (increasing
    row index), as in ImageOrientationPatient; ``pixel_spacing`` is (between rows, between columns).
    Slices are ordered along :attr:`normal` (row_dir x col_dir).
    """

    origins: np.ndarray  # (Z, 3)
    row_dir: np.ndarray  # (3,)
    col_dir: np.ndarray  # (3,)
    pixel_spacing: tuple[float, float]
    rows: int
    cols: int
    sop_uids: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.origins), self.rows, self.cols)

    @property
    def normal(self) -> np.ndarray:
        n = np.cross(self.row_dir, self.col_dir)
        return n / (np.linalg.norm(n) or 1.0)

    def slice_of_uid(self) -> dict[str, int]:
        """SOP instance UID -> slice, for UIDs naming exactly one slice (not the frames of a
        multi-frame object, which share one UID: those are placed by geometry)."""
        counts: dict[str, int] = {}
        for u in self.sop_uids:
            counts[u] = counts.get(u, 0) + 1
        return {u: k for k, u in enumerate(self.sop_uids) if u and counts[u] == 1}

    def slice_positions(self) -> np.ndarray:
        return self.origins @ self.normal

    def slice_spacing(self) -> float:
        pos = self.slice_positions()
        if len(pos) < 2:
            return float("nan")
        return float(np.median(np.abs(np.diff(pos))))

    def slice_tolerance(self) -> float:
        s = self.slice_spacing()
        return 0.5 * s if np.isfinite(s) and s > 0 else 0.5

    def nearest_slice(self, points: np.ndarray) -> int | None:
        """Slice whose plane holds ``points`` (mean distance within half a slice), else None."""
        pos = float(np.mean(points @ self.normal))
        d = np.abs(self.slice_positions() - pos)
        k = int(np.argmin(d))
        return k if d[k] <= self.slice_tolerance() + 1e-3 else None

    def to_pixel(self, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) float pixel coordinates of patient points on slice k."""
        d = points - self.origins[k]
        cols = d @ self.row_dir / self.pixel_spacing[1]
        rows = d @ self.col_dir / self.pixel_spacing[0]
        return rows, cols

    def pixel_centres(self, k: int) -> np.ndarray:
        """Patient coordinates of every pixel centre of slice k, shape (H, W, 3)."""
        r = np.arange(self.rows, dtype=np.float64)[:, None, None] * self.pixel_spacing[0] * self.col_dir
        c = np.arange(self.cols, dtype=np.float64)[None, :, None] * self.pixel_spacing[1] * self.row_dir
        return self.origins[k][None, None, :] + r + c

    def affine(self, slice_spacing: float | None = None) -> np.ndarray:
        """4x4 affine from (slice, row, col) indices to LPS millimetres (highdicom's construction;
        left-handed in highdicom's terms because slices run along row_dir x col_dir)."""
        from highdicom.spatial import create_affine_matrix_from_attributes

        dz = slice_spacing if slice_spacing is not None else self.slice_spacing()
        dz = dz if np.isfinite(dz) and dz > 0 else 1.0
        iop = [*map(float, self.row_dir), *map(float, self.col_dir)]
        return create_affine_matrix_from_attributes(
            [float(v) for v in self.origins[0]], iop, [float(v) for v in self.pixel_spacing], dz,
            index_convention="DR", slices_first=True, handedness="LEFT_HANDED")


def pixel_spacing(values: Dataset | Any) -> tuple[float, float]:
    """(between rows, between columns) in mm; NaN when the header does not say."""
    for kw in ("PixelSpacing", "ImagerPixelSpacing"):
        v = values.get(kw)
        if v is not None and len(v) == 2:
            r, c = float_or_nan(v[0]), float_or_nan(v[1])
            if r > 0 and c > 0:
                return (r, c)
    if isinstance(values, Dataset):
        g = values.get("SharedFunctionalGroupsSequence")
        if g and g[0].get("PixelMeasuresSequence"):
            v = g[0].PixelMeasuresSequence[0].get("PixelSpacing")
            if v is not None and len(v) == 2 and float_or_nan(v[0]) > 0:
                return (float_or_nan(v[0]), float_or_nan(v[1]))
    return (float("nan"), float("nan"))


def slice_sort_key(values: Any) -> tuple[float, float]:
    """Position along the slice normal (then instance number); a dataset or a scan header.
    Plain floats: this runs for every file of a source, where numpy's per-call cost shows."""
    inst = float(values.get("InstanceNumber") or 0)
    try:
        r1, r2, r3, c1, c2, c3 = (float(v) for v in values.get("ImageOrientationPatient"))
        x, y, z = (float(v) for v in values.get("ImagePositionPatient"))
        return (x * (r2 * c3 - r3 * c2) + y * (r3 * c1 - r1 * c3) + z * (r1 * c2 - r2 * c1), inst)
    except Exception:  # noqa: BLE001 -- no geometry: instance number alone
        return (inst, inst)


def series_grid(slices: list[Any]) -> ImageGrid | None:
    """The grid of a series' slices (in their order); None without orientation or positions."""
    first = slices[0]
    if first.get("ImageOrientationPatient") is None:
        return None
    if not all(s.get("ImagePositionPatient") is not None for s in slices):
        return None
    iop = vec(first.get("ImageOrientationPatient"))
    ps = pixel_spacing(first)
    if not np.all(np.isfinite(ps)):
        ps = (1.0, 1.0)
    origins = np.stack([vec(s.get("ImagePositionPatient")) for s in slices])
    return ImageGrid(origins, iop[:3], iop[3:], ps, int(first.get("Rows")), int(first.get("Columns")),
                     [str(s.get("SOPInstanceUID") or "") for s in slices])


def multiframe_grid(ds: Dataset) -> tuple[ImageGrid | None, list[int], int]:
    """Geometry of an enhanced/multi-frame object: (grid, frame order along the normal, frames dropped
    because another frame lies at the same position)."""
    frames = int(ds.get("NumberOfFrames") or 1)
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    positions: list[np.ndarray] = []
    iop = None
    if per_frame:
        for fg in per_frame[:frames]:
            pos = functional_group_item(ds, fg, "PlanePositionSequence")
            ori = functional_group_item(ds, fg, "PlaneOrientationSequence")
            if pos is None or ori is None:
                return None, list(range(frames)), 0
            positions.append(vec(pos.ImagePositionPatient))
            iop = vec(ori.ImageOrientationPatient) if iop is None else iop
    elif "ImageOrientationPatient" in ds and "ImagePositionPatient" in ds:
        iop = vec(ds.ImageOrientationPatient)
        n = np.cross(iop[:3], iop[3:])
        offsets = ds.get("GridFrameOffsetVector")
        if offsets is not None and len(offsets) == frames:
            steps = [float(o) for o in offsets]
        else:
            dz = float_or_nan(ds.get("SpacingBetweenSlices"))
            if not np.isfinite(dz):
                return None, list(range(frames)), 0
            steps = [k * dz for k in range(frames)]
        start = vec(ds.ImagePositionPatient)
        positions = [start + s * n for s in steps]
    else:
        return None, list(range(frames)), 0
    assert iop is not None
    if not np.all(np.isfinite(iop)) or not all(np.all(np.isfinite(p)) for p in positions):
        raise ReadError("impossible_geometry", f"a frame's {tag('ImagePositionPatient')} or "
                        f"{tag('ImageOrientationPatient')} (in the functional groups) holds NaN or infinite values; "
                        "re-export the image")
    n = np.cross(iop[:3], iop[3:])
    proj = [round(float(p @ n), 3) for p in positions]
    order: list[int] = []
    seen: set[float] = set()
    for i in sorted(range(len(proj)), key=lambda i: (proj[i], i)):
        if proj[i] in seen:
            continue
        seen.add(proj[i])
        order.append(i)
    ps = pixel_spacing(ds)
    if not np.all(np.isfinite(ps)):
        ps = (1.0, 1.0)
    sop = str(ds.get("SOPInstanceUID", ""))
    grid = ImageGrid(np.stack([positions[i] for i in order]), iop[:3], iop[3:], ps,
                     int(ds.Rows), int(ds.Columns), [sop] * len(order))
    return grid, order, len(positions) - len(order)


def plane_affine(row_dir: np.ndarray, col_dir: np.ndarray) -> np.ndarray:
    """Affine of one image plane, (row, col, normal) indices to LPS directions (for its letters)."""
    affine = np.eye(4)
    affine[:3, 0] = col_dir
    affine[:3, 1] = row_dir
    affine[:3, 2] = np.cross(row_dir, col_dir)
    return affine


def patient_orientation_letters(values: Any) -> tuple[str, str] | None:
    """(row, col) letters from PatientOrientation (projection radiographs): first value is the
    direction of the rows (increasing column index), second of the columns (increasing row index)."""
    po = values.get("PatientOrientation")
    if not po or len(po) != 2:
        return None
    conv = {"H": "S", "F": "I", "L": "L", "R": "R", "A": "A", "P": "P"}
    col = conv.get(str(po[0])[:1].upper())
    row = conv.get(str(po[1])[:1].upper())
    if not col or not row:
        return None
    return (row, col)


@dataclass(frozen=True)
class StackGaps:
    """Steps between consecutive slice positions far above the series' usual spacing."""

    spacing: float  # the usual (median) step, mm
    gaps: list[tuple[float, float]]  # (position before the gap along the normal, step), mm
    missing: int  # slices that would fill the gaps at the usual spacing


def stack_gaps(positions: list[float]) -> StackGaps | None:
    """Gaps in sorted slice positions (mm along the normal); None when the stack is even."""
    if len(positions) < 3:
        return None
    steps = np.diff(np.asarray(positions, dtype=np.float64))
    usual = float(np.median(steps))
    if not np.isfinite(usual) or usual <= 0:
        return None
    big = [(float(positions[i]), float(s)) for i, s in enumerate(steps) if s > GAP_FACTOR * usual]
    if not big:
        return None
    missing = int(sum(round(s / usual) - 1 for _, s in big))
    return StackGaps(usual, big, missing)
