"""The phantom is the ground truth of the whole project: check that its stated truth matches its arrays."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest

from medtrinity_assets.demo.phantom import (
    LABEL_NAMES,
    LESION_LABELS,
    ORGAN_HU,
    intensity_class,
    make_phantom,
    size_class,
    write_label_nifti,
    write_nifti,
)


def test_same_arguments_same_phantom_and_different_index_differs():
    a, b = make_phantom(0, 3), make_phantom(0, 3)
    assert np.array_equal(a.volume_hu, b.volume_hu)
    assert np.array_equal(a.label_map, b.label_map)
    assert a.lesions == b.lesions
    c = make_phantom(0, 4)
    assert not np.array_equal(a.label_map, c.label_map)
    assert make_phantom(1, 3).lesions != a.lesions


def test_types_and_shape():
    p = make_phantom(0, 0, shape=(32, 96, 112))
    assert p.volume_hu.dtype == np.float32 and p.label_map.dtype == np.uint8
    assert p.volume_hu.shape == p.label_map.shape == (32, 96, 112)
    assert p.spacing == (2.5, 1.5, 1.5)
    assert set(np.unique(p.label_map)) <= set(LABEL_NAMES) | {0}
    assert 1 <= len(p.lesions) <= 3


@pytest.mark.parametrize("index", range(8))
def test_lesion_truth_matches_label_map(index):
    p = make_phantom(7, index)
    Z, H, W = p.shape
    labels = [les["label"] for les in p.lesions]
    assert len(labels) == len(set(labels)), "one label value per lesion"
    for les in p.lesions:
        mask = p.label_map == les["label"]
        z, y, x = les["centre_voxel"]
        assert mask[z, y, x]
        # area on the centre slice is the sphere's cross-section in pixels (within voxelisation error)
        expected = math.pi * les["radius_mm"] ** 2 / (p.spacing[1] * p.spacing[2])
        assert abs(p.lesion_area_px(les["label"], z) - expected) <= 0.25 * expected + 4
        assert les["slice_areas_px"] == {zz: p.lesion_area_px(les["label"], zz) for zz in p.lesion_slices(les["label"])}
        # the organ surrounds it; the side follows the column (columns run toward the patient's left)
        assert les["side"] == ("right" if x < (W - 1) / 2 else "left")
        if les["organ"] == "liver":
            assert les["side"] == "right"
        if les["organ"] == "spleen":
            assert les["side"] == "left"
        # measured intensities agree with the volume and the declared class
        assert abs(float(p.volume_hu[mask].mean()) - les["mean_hu"]) < 0.01
        assert abs(les["background_hu"] - ORGAN_HU[les["organ_label"]]) < 5
        assert les["intensity"] == intensity_class(les["mean_hu"] - les["background_hu"])
        assert les["size_class"] == size_class(2 * les["radius_mm"])
        assert les["name"] == LESION_LABELS[les["label"]]


def test_organs_lie_on_their_sides():
    p = make_phantom(0, 0)
    W = p.shape[2]
    liver_cols = np.nonzero(p.label_map == 1)[2]
    spleen_cols = np.nonzero(p.label_map == 2)[2]
    assert liver_cols.mean() < W / 2 < spleen_cols.mean()  # liver = patient right = image left
    lung_z = np.nonzero(p.label_map == 4)[0]
    liver_z = np.nonzero(p.label_map == 1)[0]
    assert lung_z.min() > liver_z.mean()  # lungs are superior (higher slice index)


def test_both_sides_and_intensity_classes_occur_across_a_demo_set():
    lesions = [les for i in range(12) for les in make_phantom(0, i).lesions]
    assert {les["side"] for les in lesions} == {"left", "right"}
    assert {"hypodense", "hyperdense"} <= {les["intensity"] for les in lesions}
    assert {"homogeneous", "heterogeneous"} == {les["texture"] for les in lesions}
    assert len({les["size_class"] for les in lesions}) >= 2


def _canonical_lps(path):
    """What a correct reader must do: reorient to RAS with nibabel, then to the project's (Z,H,W) LPS."""
    img = nib.as_closest_canonical(nib.load(str(path)))
    ras = np.asarray(img.dataobj)
    return np.transpose(ras[::-1, ::-1, :], (2, 1, 0)), img.affine


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_written_in_both_orientations_reads_back_identically(tmp_path, suffix):
    p = make_phantom(0, 1)
    arrays = {}
    for orient in ("LPS", "RAS"):
        path = write_nifti(p, tmp_path / f"v_{orient}{suffix}", orientation=orient)
        lpath = write_label_nifti(p, tmp_path / f"l_{orient}{suffix}", orientation=orient)
        assert nib.aff2axcodes(nib.load(str(path)).affine) == tuple(orient)
        vol, aff = _canonical_lps(path)
        lab, _ = _canonical_lps(lpath)
        arrays[orient] = (vol, lab, aff)
        assert np.array_equal(lab, p.label_map)
        assert np.abs(vol - p.volume_hu).max() <= 0.5 + 1e-3  # int16 rounding
    assert np.array_equal(arrays["LPS"][0], arrays["RAS"][0])
    assert np.allclose(arrays["LPS"][2], arrays["RAS"][2])


def test_nifti_gz_bytes_are_deterministic(tmp_path):
    p = make_phantom(0, 2)
    a = write_nifti(p, tmp_path / "a.nii.gz", orientation="RAS").read_bytes()
    b = write_nifti(p, tmp_path / "b.nii.gz", orientation="RAS").read_bytes()
    assert a == b


def test_bad_orientation_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="orientation"):
        write_nifti(make_phantom(0, 0), tmp_path / "x.nii", orientation="XYZ")
