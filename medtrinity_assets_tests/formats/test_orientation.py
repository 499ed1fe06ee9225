"""The shared affine path: canonical order from an affine (nibabel), letters, the 2D display rule."""

from __future__ import annotations

import numpy as np
import pytest

from medtrinity_assets.formats.orientation import (
    GeometryError,
    axis_letters,
    check_affine,
    display_2d,
    ras_to_lps,
    reorientation,
)


def _marked(shape=(4, 5, 6)) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def test_lps_stored_volume_is_already_canonical_after_transposing_to_slices_first():
    # array axes (i, j, k) toward L, P, S: canonical (Z, H, W) is the transpose (k, j, i)
    affine = np.diag([0.5, 0.7, 2.0, 1.0])
    turn = reorientation(affine)
    vol = _marked((6, 5, 4))
    np.testing.assert_array_equal(turn.apply(vol), vol.transpose(2, 1, 0))
    assert turn.order([0.5, 0.7, 2.0]) == (2.0, 0.7, 0.5)


def test_ras_and_lps_storage_of_the_same_voxels_agree():
    vol_lps = _marked((6, 5, 4))  # (x toward L, y toward P, z toward S)
    vol_ras = vol_lps[::-1, ::-1, :]  # the same voxels stored toward R and A
    a = reorientation(np.diag([1.0, 1.0, 1.0, 1.0])).apply(vol_lps)
    b = reorientation(ras_to_lps(np.diag([1.0, 1.0, 1.0, 1.0]))).apply(vol_ras)
    np.testing.assert_array_equal(a, b)


def test_a_sagittal_stack_becomes_axial_slices():
    # axes: slices toward L, rows toward I (feet), columns toward A
    affine = np.zeros((4, 4))
    affine[0, 0], affine[2, 1], affine[1, 2], affine[3, 3] = 3.0, -1.0, -1.0, 1.0
    turn = reorientation(affine)
    vol = _marked((4, 5, 6))
    out = turn.apply(vol)
    assert out.shape == (5, 6, 4)  # (S-I, A-P, L-R)
    # the last stored row (most inferior) is the first canonical slice; stored columns run toward A,
    # so they are reversed to run toward P; stored slices run toward L, as canonical columns do
    np.testing.assert_array_equal(out[0], vol[:, -1, ::-1].T)
    assert turn.order([3.0, 1.0, 1.0]) == (1.0, 1.0, 3.0)


@pytest.mark.parametrize("bad,message", [(np.zeros((4, 4)), "all zeros"), (np.full((4, 4), np.nan), "NaN"),
                                         (np.diag([1.0, 0.0, 1.0, 1.0]), "zero length")])
def test_affines_that_map_voxels_nowhere_are_refused(bad, message):
    with pytest.raises(GeometryError, match=message):
        check_affine(bad)


def test_an_in_plane_45_degree_image_still_gets_two_letters():
    c = np.sqrt(0.5)
    affine = np.eye(4)
    affine[:3, 0] = [c, c, 0]  # rows run toward L and P alike
    affine[:3, 1] = [-c, c, 0]  # columns toward R and P alike
    affine[:3, 2] = [0, 0, 1]
    letters = axis_letters(affine)
    assert len(set(letters[:2])) == 2 and set(letters[:2]) <= set("LRPA")


def test_display_rule_for_2d():
    assert display_2d("A", "R") == (False, True, True, ("P", "L"))  # axial stored toward R and A: both flipped
    assert display_2d("I", "A") == (False, False, True, ("I", "P"))  # sagittal: columns toward P, rows to feet
    assert display_2d("L", "I")[0] is True  # stored transposed
