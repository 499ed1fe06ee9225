"""SEG and RTSTRUCT conversion on the real pydicom objects and on the phantom study."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from medtrinity_assets.formats.dicom import ground_truth as dicom_gt
from medtrinity_assets.formats.dicom.geometry import ImageGrid
from medtrinity_assets_tests.support.dicom import data_file, small_phantom


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


@pytest.mark.parametrize("name,frames", [("liver_1frame.dcm", 1), ("liver.dcm", 3)])
def test_real_liver_seg_on_its_own_planes(name, frames):
    seg = pydicom.dcmread(data_file(name))
    grid = dicom_gt.grid_from_seg(seg)
    assert grid.shape == (frames, 512, 512)
    lm, names, stats = dicom_gt.seg_to_label_map(seg, grid)
    assert names == {1: "Liver"} and stats["frames_unplaced"] == 0
    raw = np.asarray(seg.pixel_array).reshape(frames, 512, 512)
    positions = [float(f.PlanePositionSequence[0].ImagePositionPatient[2])
                 for f in seg.PerFrameFunctionalGroupsSequence][:frames]
    raw = raw[np.argsort(positions)]  # the grid runs along the slice normal
    np.testing.assert_array_equal(lm == 1, raw > 0)
    area_cm2 = [(lm[k] == 1).sum() * 0.810547**2 / 100 for k in range(frames)]
    assert all(150 < a < 350 for a in area_cm2), area_cm2  # an adult liver's axial cross-section
    assert set(np.unique(lm)) == {0, 1}


def test_liver_seg_resampled_onto_a_coarser_grid_keeps_its_area():
    seg = pydicom.dcmread(data_file("liver.dcm"))
    fine = dicom_gt.grid_from_seg(seg)
    coarse = ImageGrid(fine.origins.copy(), fine.row_dir, fine.col_dir,
                                (fine.pixel_spacing[0] * 2, fine.pixel_spacing[1] * 2), 256, 256)
    lm_f, _, _ = dicom_gt.seg_to_label_map(seg, fine)
    lm_c, _, _ = dicom_gt.seg_to_label_map(seg, coarse)
    area_f = (lm_f == 1).sum() * fine.pixel_spacing[0] ** 2
    area_c = (lm_c == 1).sum() * coarse.pixel_spacing[0] ** 2
    assert area_c == pytest.approx(area_f, rel=0.03)


def test_seg_frame_outside_every_plane_is_reported_not_guessed():
    seg = pydicom.dcmread(data_file("liver.dcm"))
    grid = dicom_gt.grid_from_seg(seg)
    far = ImageGrid(grid.origins + grid.normal * 50.0, grid.row_dir, grid.col_dir, grid.pixel_spacing,
                             grid.rows, grid.cols)
    lm, _, stats = dicom_gt.seg_to_label_map(seg, far)
    assert stats["frames_unplaced"] == 3 and not lm.any()


def test_seg_references_its_series_and_source_images():
    seg = pydicom.dcmread(data_file("liver.dcm"))
    series, sops = dicom_gt.seg_referenced(seg)
    assert series == {str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)}
    assert len(sops) == 3


def test_real_rtstruct_rasterised_on_the_grid_of_its_contours():
    ds = pydicom.dcmread(data_file("rtstruct.dcm"), force=True)
    names, contours = dicom_gt.rtstruct_contours(ds)
    assert names == {1: "patient", 2: "Isocenter 1", 3: "Isocenter 2"}
    grid = dicom_gt.grid_from_contours(ds)
    lm, label_names, info = dicom_gt.rtstruct_to_label_map(ds, grid)
    assert label_names == {1: "patient"}
    assert info["contours_placed"] == 3 and info["contours_unplaced"] == 0
    assert sorted(info["non_area_rois"]) == ["Isocenter 1", "Isocenter 2"]
    closed = [c for c in contours if c.kind == "CLOSED_PLANAR"]
    for c in closed:
        k = grid.nearest_slice(c.points)
        area_mm2 = (lm[k] == 1).sum() * grid.pixel_spacing[0] * grid.pixel_spacing[1]
        assert area_mm2 == pytest.approx(_polygon_area(c.points), rel=0.02)


def test_rtstruct_references_series_and_frame_of_reference():
    ds = pydicom.dcmread(data_file("rtstruct.dcm"), force=True)
    series, _, fors = dicom_gt.rtstruct_referenced(ds)
    assert len(series) == 1 and len(fors) == 1


def test_phantom_rtstruct_contours_match_the_truth(tmp_path):
    from medtrinity_assets.demo.dicom_phantom import write_phantom_dicom
    from medtrinity_assets.formats.dicom.geometry import series_grid

    ph = small_phantom()
    out = write_phantom_dicom(ph, tmp_path, with_seg=False)
    datasets = sorted((pydicom.dcmread(p) for p in out.ct_files), key=lambda d: float(d.ImagePositionPatient[2]))
    grid = series_grid(datasets)
    lm, names, info = dicom_gt.rtstruct_to_label_map(pydicom.dcmread(out.rtstruct_file), grid)
    assert info["contours_unplaced"] == 0 and "liver cyst" in names.values()  # the lesions by default
    for value, name in names.items():
        truth_value = next(v for v, n in ph.label_names.items() if n == name)
        truth = ph.label_map == truth_value
        got = lm == value
        dice = 2 * (got & truth).sum() / (got.sum() + truth.sum())
        assert dice > 0.8, (name, dice)


def test_merge_unites_labels_of_the_same_name():
    a = np.zeros((1, 4, 4), np.uint8)
    a[0, :2] = 1
    b = np.zeros((1, 4, 4), np.uint8)
    b[0, 1:3] = 5
    b[0, 3, 3] = 6
    lm, names = dicom_gt.merge_label_maps([(a, {1: "liver"}), (b, {5: "liver", 6: "cyst", 7: "empty"})])
    assert names == {1: "liver", 2: "cyst"}
    assert (lm == 1).sum() == 12 and (lm == 2).sum() == 1
