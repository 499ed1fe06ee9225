"""Canonical orientation from an affine: the one geometry path of every reader that knows where the
patient is (DICOM, NIfTI, MSD).

A reader states the affine of its array -- voxel index to patient millimetres in DICOM's LPS world
(x toward the patient's Left, y toward Posterior, z toward Superior); a NIfTI affine (RAS) goes
through :func:`ras_to_lps` first. ``nibabel.orientations`` -- the machinery MONAI's ``Orientation``
transform delegates to -- then finds the closest axis permutation and flips, which bring a 3D array
to the project's canonical ``(Z, H, W)`` order: slices toward Superior, rows toward Posterior,
columns toward Left (see :mod:`.base`). No resampling: an oblique volume keeps its voxels and the
reader notes the obliquity.

2D images follow a display rule instead (:func:`display_2d`): the left-right axis on the columns
when the image has one, every axis pointing to L, P or I -- the radiological display.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel import orientations as ornt_lib
from nibabel.affines import obliquity, voxel_sizes

# nibabel axis-code labels for an LPS world: (negative end, positive end) of x, y, z
LPS_LABELS = (("R", "L"), ("A", "P"), ("I", "S"))
# canonical layout: array axis 0 -> world z (+, Superior), 1 -> y (+, Posterior), 2 -> x (+, Left)
CANONICAL_ORNT = np.array([[2.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
CANONICAL_TOWARD = ("S", "P", "L")  # (slice, row, col)


class GeometryError(ValueError):
    """An affine that maps voxels nowhere (zeros, NaN, collapsed axes); the message says why."""


def ras_to_lps(affine: np.ndarray) -> np.ndarray:
    """A NIfTI (RAS world) affine as the same mapping into the LPS world."""
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, dtype=np.float64)


def check_affine(affine: np.ndarray) -> None:
    """Raise :class:`GeometryError` unless the affine is finite and maps the three axes apart."""
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise GeometryError(f"the affine has shape {a.shape}, not 4x4")
    if not np.all(np.isfinite(a[:3])):
        raise GeometryError("the affine holds NaN or infinite values")
    m = a[:3, :3]
    if not np.any(m):
        raise GeometryError("the affine's matrix is all zeros")
    norms = np.linalg.norm(m, axis=0)
    if np.any(norms == 0):
        raise GeometryError(f"axis {int(np.argmin(norms))} of the affine has zero length")
    if abs(np.linalg.det(m / norms)) < 1e-6:
        raise GeometryError("the affine's axes are parallel (its matrix is singular)")


@dataclass(frozen=True)
class Reorientation:
    """The permutation and flips taking an array to canonical order (a nibabel orientation transform)."""

    transform: np.ndarray  # (3, 2): for input axis i, [output axis, +1 keep / -1 flip]

    def apply(self, array: np.ndarray) -> np.ndarray:
        """The array in canonical order (a view: flips and a transpose)."""
        return ornt_lib.apply_orientation(array, self.transform)

    def order(self, per_axis) -> tuple:
        """Per-axis values (spacing, shape) of the input axes, in canonical order."""
        out = [None] * 3
        for i in range(3):
            out[int(self.transform[i, 0])] = per_axis[i]
        return tuple(out)

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.transform, [[0, 1], [1, 1], [2, 1]]))


def reorientation(affine_lps: np.ndarray) -> Reorientation:
    """How to bring an array with this (LPS-world) affine to canonical order."""
    check_affine(affine_lps)
    start = ornt_lib.io_orientation(affine_lps)
    return Reorientation(ornt_lib.ornt_transform(start, CANONICAL_ORNT))


def obliquity_deg(affine: np.ndarray) -> list[float]:
    """Per array axis, the angle (degrees) between it and the closest world axis."""
    return [float(np.degrees(o)) for o in obliquity(np.asarray(affine, dtype=np.float64))]


def spacing_of(affine: np.ndarray) -> tuple[float, ...]:
    """Millimetres per step along each array axis (the affine's column norms)."""
    return tuple(float(v) for v in voxel_sizes(np.asarray(affine, dtype=np.float64)))


def axis_letters(affine_lps: np.ndarray) -> tuple[str, ...]:
    """Patient direction (L R P A S I) each array axis points to, assigned jointly by nibabel so
    that two axes never share a direction (an in-plane 45 degree image still gets two letters)."""
    check_affine(affine_lps)
    return tuple(str(c) for c in ornt_lib.aff2axcodes(affine_lps, labels=LPS_LABELS))


_OPPOSITE = {"L": "R", "R": "L", "P": "A", "A": "P", "S": "I", "I": "S"}


def display_2d(row_letter: str, col_letter: str) -> tuple[bool, bool, bool, tuple[str, str]]:
    """How to show a 2D image in the standard radiological display.

    ``row_letter`` is the patient direction of increasing row index, ``col_letter`` of increasing
    column index. Columns get the left-right axis when there is one (else anterior-posterior);
    then every axis is flipped to point to L, P or I (axial: cols->L rows->P; coronal: cols->L
    rows->I; sagittal: cols->P rows->I). Returns (transpose, flip_rows, flip_cols, (row, col) letters).
    """
    def rank(letter: str) -> int:
        return {"L": 0, "R": 0, "A": 1, "P": 1, "S": 2, "I": 2}.get(letter, 3)

    transpose = rank(row_letter) < rank(col_letter)
    if transpose:
        row_letter, col_letter = col_letter, row_letter
    flip_rows = row_letter in ("R", "A", "S")
    flip_cols = col_letter in ("R", "A", "S")
    if flip_rows:
        row_letter = _OPPOSITE[row_letter]
    if flip_cols:
        col_letter = _OPPOSITE[col_letter]
    return transpose, flip_rows, flip_cols, (row_letter, col_letter)


def apply_display_2d(img: np.ndarray, transpose: bool, flip_rows: bool, flip_cols: bool) -> np.ndarray:
    if transpose:
        img = np.swapaxes(img, 0, 1)
    if flip_rows:
        img = img[::-1]
    if flip_cols:
        img = img[:, ::-1]
    return img
