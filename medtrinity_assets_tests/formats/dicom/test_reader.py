"""DicomReader on real pydicom / pydicom-data files: decoding, units, orientation, grouping, bad input."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medtrinity_assets.formats.base import ItemRef, Quarantined
from medtrinity_assets.formats.dicom import DicomReader
from medtrinity_assets.formats.orientation import display_2d as canonical_2d
from medtrinity_assets_tests.support.dicom import copy_into, data_file, small_phantom, source, write_bad_files

READER = DicomReader()


def scan(folder: Path, **options):
    res = list(READER.scan(source(folder, **options)))
    items = [r for r in res if isinstance(r, ItemRef)]
    bad = [r for r in res if isinstance(r, Quarantined)]
    return items, bad


def load_one(tmp_path: Path, name: str, **options):
    folder = tmp_path / name.replace(".", "_")
    copy_into(folder, name, "IMG")  # no extension on purpose
    items, bad = scan(folder, **options)
    assert len(items) == 1, (items, bad)
    return items[0], READER.load(source(folder, **options), items[0])


def raw_pixels(name: str) -> np.ndarray:
    return pydicom.dcmread(data_file(name)).pixel_array


def test_ct_small_in_hounsfield_units_and_canonical(tmp_path):
    ref, item = load_one(tmp_path, "CT_small.dcm")
    assert ref.kind == "dicom_series" and ref.modality == "CT" and ref.n_files == 1
    assert item.pixels.shape == (128, 128) and item.pixels.dtype == np.float32
    raw = raw_pixels("CT_small.dcm").astype(np.float32)
    np.testing.assert_array_equal(item.pixels, raw - 1024.0)  # slope 1, intercept -1024
    assert (item.col_toward, item.row_toward) == ("L", "P")
    assert item.spacing == pytest.approx((0.661468, 0.661468))
    assert item.meta["Modality"] == "CT" and item.meta["TransferSyntaxUID"] == "1.2.840.10008.1.2.1"
    assert -1100 < float(np.median(item.pixels)) < 300


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm"])
def test_mr_small_transfer_syntaxes_decode_identically(tmp_path, name):
    _, ref_item = load_one(tmp_path, "MR_small.dcm")
    _, item = load_one(tmp_path, name)
    assert item.modality == "MR"
    np.testing.assert_array_equal(item.pixels, ref_item.pixels)


def test_j2k_pixelrep_mismatch_oblique_head_ct(tmp_path):
    _, item = load_one(tmp_path, "J2K_pixelrep_mismatch.dcm")
    assert item.pixels.shape == (512, 512) and item.modality == "CT"
    assert item.meta["TransferSyntax"].startswith("JPEG 2000")
    assert (item.col_toward, item.row_toward) == ("L", "P")  # tilted gantry (~22 deg) but still axial
    # head CT: air around, bone inside
    assert item.pixels.min() < -900 and item.pixels.max() > 1000


@pytest.mark.parametrize("lossless,uncompressed", [("RG1_J2KR.dcm", "RG1_UNCR.dcm"), ("693_J2KR.dcm", "693_UNCR.dcm"),
                                                   ("US1_J2KR.dcm", "US1_UNCR.dcm")])
def test_lossless_jpeg2000_equals_uncompressed(tmp_path, lossless, uncompressed):
    _, a = load_one(tmp_path, lossless)
    _, b = load_one(tmp_path, uncompressed)
    np.testing.assert_array_equal(a.pixels, b.pixels)


def test_cr_monochrome1_inverted_and_patient_orientation(tmp_path):
    ref, item = load_one(tmp_path, "RG1_UNCI.dcm")
    assert ref.kind == "dicom_file" and item.modality == "CR"
    ds = pydicom.dcmread(data_file("RG1_UNCI.dcm"))
    raw = ds.pixel_array.astype(np.int64)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and list(ds.PatientOrientation) == ["L", "F"]
    np.testing.assert_array_equal(item.pixels, (2 ** ds.BitsStored - 1) - raw)  # inverted, not flipped
    assert (item.col_toward, item.row_toward) == ("L", "I") and item.meta["monochrome1_inverted"]


def test_cr_stored_toward_patient_right_is_mirrored(tmp_path):
    _, item = load_one(tmp_path, "RG3_UNCR.dcm")
    ds = pydicom.dcmread(data_file("RG3_UNCR.dcm"))
    assert list(ds.PatientOrientation) == ["R", "F"]
    inverted = (2 ** ds.BitsStored - 1) - ds.pixel_array.astype(np.int64)
    np.testing.assert_array_equal(item.pixels, inverted[:, ::-1])
    assert item.col_toward == "L"


def test_ultrasound_rgb(tmp_path):
    _, item = load_one(tmp_path, "US1_UNCR.dcm")
    assert item.pixels.shape == (480, 640, 3) and item.meta["rgb"] and item.modality == "US"
    assert 0 <= item.pixels.min() and item.pixels.max() <= 255
    assert item.col_toward == "" and item.row_toward == ""  # ultrasound: no patient axes known


def test_ybr_converted_to_rgb(tmp_path):
    _, ybr = load_one(tmp_path, "SC_ybr_full_uncompressed.dcm")
    _, rgb = load_one(tmp_path, "SC_rgb.dcm")
    assert ybr.pixels.shape == rgb.pixels.shape == (100, 100, 3)
    diff = np.abs(ybr.pixels - rgb.pixels)
    assert diff.mean() < 1.0 and diff.max() <= 8  # colour conversion rounding only
    raw = pydicom.dcmread(data_file("SC_ybr_full_uncompressed.dcm"))
    raw.pixel_array_options(as_rgb=False)
    assert np.abs(raw.pixel_array.astype(np.float32) - rgb.pixels).mean() > 20  # stored values really are YBR


def test_enhanced_mr_multiframe_is_one_volume(tmp_path):
    ref, item = load_one(tmp_path, "emri_small.dcm")
    assert ref.kind == "dicom_multiframe" and ref.n_frames == 10
    assert item.pixels.shape == (10, 64, 64) and item.modality == "MR"
    np.testing.assert_array_equal(item.pixels, raw_pixels("emri_small.dcm").astype(np.float32))


def test_enhanced_ct_rescaled_and_flipped_to_lps(tmp_path):
    ref, item = load_one(tmp_path, "eCT_Supplemental.dcm")
    ds = pydicom.dcmread(data_file("eCT_Supplemental.dcm"))
    iop = [float(v) for v in ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient]
    assert iop[0] == -1.0  # stored with columns toward the patient's right
    expected = ds.pixel_array.astype(np.float32)[:, :, ::-1] - 1024.0
    z = [float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in ds.PerFrameFunctionalGroupsSequence]
    if z[0] > z[1]:
        expected = expected[::-1]
    np.testing.assert_array_equal(item.pixels, expected)
    assert (item.col_toward, item.row_toward, item.slice_toward) == ("L", "P", "S")
    assert item.spacing == pytest.approx((10.0, 0.388672, 0.388672))


def test_pixel_data_plugins_decode_jpeg_lossless_and_jpeg_ls(tmp_path):
    _, item = load_one(tmp_path, "JPGLosslessP14SV1_1s_1f_8b.dcm")
    assert item.pixels.shape == (768, 1024) and item.pixels.max() > 0
    _, item = load_one(tmp_path, "JPEGLSNearLossless_16.dcm")
    assert item.pixels.ndim == 2 and item.pixels.std() > 0


# ------------------------------------------------------------------ series and orientation


def _phantom_folder(tmp_path: Path, orientation: str, **kw):
    from medtrinity_assets.demo.dicom_phantom import write_phantom_dicom

    ph = small_phantom()
    out = write_phantom_dicom(ph, tmp_path / orientation, orientation=orientation, **kw)
    return ph, out


@pytest.mark.parametrize("orientation", ["LPS", "RAI", "RPS", "LAI"])
def test_series_in_any_stored_orientation_comes_back_canonical(tmp_path, orientation):
    ph, out = _phantom_folder(tmp_path, orientation, with_rtstruct=False)
    items, bad = scan(out.study_dir.parent)
    assert not bad and len(items) == 1
    ref = items[0]
    assert ref.kind == "dicom_series" and ref.n_files == ph.volume_hu.shape[0] and ref.locator["seg"]
    item = READER.load(source(out.study_dir.parent), ref)
    assert item.pixels.shape == ph.volume_hu.shape
    assert np.abs(item.pixels - ph.volume_hu).max() <= 0.5  # int16 rounding only
    assert (item.col_toward, item.row_toward, item.slice_toward) == ("L", "P", "S")
    assert item.spacing == pytest.approx(tuple(ph.spacing))
    # the SEG lands on the same voxels, whatever the storage order
    for value, name in ph.label_names.items():
        truth = ph.label_map == value
        if not truth.any():
            continue
        got = [v for v, n in item.label_names.items() if n == name]
        assert len(got) == 1, (name, item.label_names)
        np.testing.assert_array_equal(item.label_map == got[0], truth)


def test_item_keys_do_not_depend_on_where_the_source_folder_lies(tmp_path):
    """The locator names files relative to the source folder, so a copied or moved source keeps its item
    keys (and so its sample ids), and loads from where it is now, ground truth included."""
    from medtrinity_assets.ingest import build_manifest

    ph, out = _phantom_folder(tmp_path / "first", "LPS")
    first = out.study_dir.parent
    moved = tmp_path / "somewhere" / "else" / "dicom"
    shutil.copytree(first, moved)
    items_a, bad_a = scan(first)
    items_b, bad_b = scan(moved)
    assert not bad_a and not bad_b and len(items_a) == 1
    assert items_a[0].locator == items_b[0].locator
    assert items_a[0].locator["seg"] and items_a[0].locator["rtstruct"]
    for path in (p for k in ("files", "seg", "rtstruct") for p in items_a[0].locator[k]):
        assert not Path(path).is_absolute() and str(tmp_path) not in path
    keys = [build_manifest(source(folder), salt="s", shards=4)[0].select(["item_key", "rel_path", "subject_key",
                                                                          "series_key", "shard"]).to_pylist()
            for folder in (first, moved)]
    assert keys[0] == keys[1]
    shutil.rmtree(tmp_path / "first")  # the copy is read from where it lies now
    item = READER.load(source(moved), items_b[0])
    assert np.abs(item.pixels - ph.volume_hu).max() <= 0.5 and set(item.label_names.values()) >= {"liver"}


def test_series_sorted_by_position_not_file_name(tmp_path):
    ph, out = _phantom_folder(tmp_path, "LPS", with_seg=False, with_rtstruct=False)
    files = list(out.ct_files)
    random.Random(0).shuffle(files)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i, f in enumerate(files):  # random names, no extension, numbering unrelated to position
        shutil.copy(f, mixed / f"x{i:03d}")
    items, bad = scan(mixed)
    assert not bad and len(items) == 1
    item = READER.load(source(mixed), items[0])
    assert np.abs(item.pixels - ph.volume_hu).max() <= 0.5


def test_single_slice_orientation_set_for_2d(tmp_path):
    # an axial slice stored toward the patient's right and anterior is flipped both ways
    assert canonical_2d("A", "R") == (False, True, True, ("P", "L"))
    # a sagittal slice: columns toward posterior, rows toward feet
    assert canonical_2d("I", "A") == (False, False, True, ("I", "P"))
    # stored transposed (columns along the head-feet axis)
    assert canonical_2d("L", "I")[0] is True
    _, item = load_one(tmp_path, "MR2_UNCR.dcm")  # an oblique sagittal MR slice
    assert (item.col_toward, item.row_toward) == ("P", "I")


# ------------------------------------------------------------------ bad input


def test_each_bad_input_is_quarantined_with_a_reason_and_good_files_survive(tmp_path):
    folder = tmp_path / "mixed"
    paths = write_bad_files(folder)
    copy_into(folder / "good", "CT_small.dcm", "IM1")
    items, bad = scan(folder)
    by_name = {Path(b.rel_path).name: b for b in bad}
    assert by_name["empty_file"].error_class == "empty_file"
    assert by_name["truncated_ct"].error_class == "truncated_dicom"
    assert by_name["random_bytes.dcm"].error_class == "not_dicom"
    assert by_name["claims_more_pixels"].error_class == "pixel_data_short"
    assert "bytes" in by_name["claims_more_pixels"].reason
    assert by_name["no_pixel_data"].error_class == "no_pixel_data"
    und = by_name["mpeg2_image"]
    assert und.error_class == "undecodable_transfer_syntax" and "1.2.840.10008.1.2.4.100" in und.reason
    assert len(bad) == len(paths)
    for b in bad:
        assert len(b.reason) > 20
    assert len(items) == 1
    item = READER.load(source(folder), items[0])
    assert item.pixels.shape == (128, 128)


def test_decode_failure_at_load_names_the_transfer_syntax(tmp_path):
    folder = tmp_path / "jpeg"
    copy_into(folder, "JPEG-lossy.dcm", "IM1")  # 12-bit lossy JPEG that the installed decoders reject
    items, _ = scan(folder)
    from medtrinity_assets.formats.base import ReadError

    try:
        READER.load(source(folder), items[0])
    except ReadError as exc:
        assert exc.error_class == "decode_failed" and "JPEG Extended" in exc.reason
    else:  # a newer decoder reads it: then it must be a real image
        pass


def test_series_with_an_odd_sized_slice_keeps_the_rest(tmp_path):
    ph, out = _phantom_folder(tmp_path, "LPS", with_seg=False, with_rtstruct=False)
    odd = out.ct_files[3]
    ds = pydicom.dcmread(odd)
    arr = ds.pixel_array[:32, :32].copy()
    ds.Rows, ds.Columns = arr.shape
    ds.PixelData = arr.tobytes()
    ds.save_as(odd)
    items, bad = scan(out.study_dir)
    assert [b.error_class for b in bad if b.severity == "error"] == ["series_size_mismatch"]
    # the slice left out leaves a hole in the stack: the volume is kept, with a warning saying so
    assert [(b.error_class, b.severity) for b in bad if b.severity != "error"] == [("series_gap", "warning")]
    assert len(items) == 1 and items[0].n_files == len(out.ct_files) - 1
    item = READER.load(source(out.study_dir), items[0])
    assert item.pixels.shape == (ph.volume_hu.shape[0] - 1, *ph.volume_hu.shape[1:])


def test_burned_in_annotation_quarantined_unless_allowed(tmp_path):
    folder = tmp_path / "burned"
    ds = pydicom.dcmread(data_file("US1_UNCR.dcm"))
    ds.BurnedInAnnotation = "YES"
    folder.mkdir()
    ds.save_as(folder / "us")
    items, bad = scan(folder)
    assert not items and bad[0].error_class == "burned_in_annotation"
    items, bad = scan(folder, allow_burned_in=True)
    assert len(items) == 1 and not bad
    item = READER.load(source(folder, allow_burned_in=True), items[0])
    assert item.burned_in_annotation is True


def test_seg_and_rtstruct_without_their_images_are_quarantined(tmp_path):
    folder = tmp_path / "gt_only"
    copy_into(folder, "liver.dcm")
    copy_into(folder, "rtstruct.dcm")
    items, bad = scan(folder)
    assert not items
    classes = sorted(b.error_class for b in bad)
    assert classes == ["rtstruct_images_missing", "seg_images_missing"]
    assert all("add its images" in b.reason for b in bad)


def test_meta_is_allow_listed_and_json_safe(tmp_path):
    _, item = load_one(tmp_path, "CT_small.dcm")
    allowed = {"Modality", "BodyPartExamined", "PixelSpacing", "SliceThickness", "KVP", "Exposure", "ExposureTime",
               "XRayTubeCurrent", "PhotometricInterpretation", "Rows", "Columns", "BitsStored", "SamplesPerPixel",
               "TransferSyntaxUID", "TransferSyntax", "monochrome1_inverted", "body_part", "PatientPosition",
               "RescaleType", "SpacingBetweenSlices", "n_slices"}
    assert set(item.meta) <= allowed, set(item.meta) - allowed
    json.dumps(item.meta)
    assert item.meta["KVP"] == pytest.approx(120.0)


def test_sample_files_sharing_a_series_uid_across_patients_stay_apart(tmp_path):
    # MR_small and MR2 carry the same SeriesInstanceUID but different patients (pydicom's samples)
    folder = tmp_path / "two_patients"
    copy_into(folder / "p1", "MR_small.dcm")
    copy_into(folder / "p2", "MR2_J2KR.dcm")
    items, bad = scan(folder)
    assert not bad and sorted(i.n_files for i in items) == [1, 1] and len(items) == 2
    shapes = sorted(READER.load(source(folder), i).pixels.shape for i in items)
    assert shapes == [(64, 64), (1024, 1024)]


def test_enhanced_ct_with_seg_lands_on_the_canonical_grid(tmp_path):
    """An enhanced (multi-frame) CT stored RAI plus a SEG made on it: frames share one SOP UID,
    so the SEG must be placed by geometry, then reoriented with the pixels."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medtrinity_assets.demo.dicom_phantom import write_phantom_dicom

    ph = small_phantom()
    out = write_phantom_dicom(ph, tmp_path / "legacy", orientation="RAI", with_seg=False, with_rtstruct=False)
    legacy = sorted((pydicom.dcmread(p) for p in out.ct_files), key=lambda d: int(d.InstanceNumber))
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=legacy, series_instance_uid=hd.UID(), series_number=9, sop_instance_uid=hd.UID(),
        instance_number=1)
    folder = tmp_path / "enhanced"
    folder.mkdir()
    enhanced.save_as(folder / "ct")
    enhanced = pydicom.dcmread(folder / "ct")
    liver = next(v for v, n in ph.label_names.items() if n == "liver")
    z_of_frame = [int(round((float(f.PlanePositionSequence[0].ImagePositionPatient[2]) - (-(ph.shape[0] - 1) *
                                                                                      ph.spacing[0] / 2)) / ph.spacing[0]))
                  for f in enhanced.PerFrameFunctionalGroupsSequence]
    stored_mask = np.stack([(ph.label_map[z] == liver)[::-1, ::-1] for z in z_of_frame])  # RAI pixel layout
    seg = hd.seg.Segmentation(
        source_images=[enhanced], pixel_array=stored_mask.astype(np.uint8), segmentation_type="BINARY",
        segment_descriptions=[hd.seg.SegmentDescription(1, "liver", codes.SCT.Organ, codes.SCT.Liver, "MANUAL")],
        series_instance_uid=hd.UID(), series_number=10, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="test", manufacturer_model_name="test", software_versions="1", device_serial_number="1")
    seg.save_as(folder / "seg")
    items, bad = scan(folder)
    assert not bad and len(items) == 1 and items[0].kind == "dicom_multiframe" and items[0].locator["seg"]
    item = READER.load(source(folder), items[0])
    assert np.abs(item.pixels - ph.volume_hu).max() <= 0.5
    assert item.label_names == {1: "liver"}
    np.testing.assert_array_equal(item.label_map == 1, ph.label_map == liver)


@pytest.mark.parametrize("name", ["OT-PAL-8-face.dcm", "examples_palette.dcm"])
def test_palette_colour_becomes_rgb_even_without_file_meta(tmp_path, name):
    _, item = load_one(tmp_path, name)
    assert item.pixels.ndim == 3 and item.pixels.shape[-1] == 3 and item.meta["rgb"]
    assert item.pixels.max() <= 255 and item.pixels.max() > 200
    assert np.abs(item.pixels[..., 0] - item.pixels[..., 2]).mean() > 1  # really coloured


def test_non_image_objects_are_quarantined(tmp_path):
    folder = tmp_path / "rt"
    copy_into(folder, "rtdose.dcm")
    copy_into(folder, "rtplan.dcm")
    items, bad = scan(folder)
    assert not items and {b.error_class for b in bad} == {"not_an_image"}


@pytest.mark.parametrize("cut,error_class", [(200, "truncated_dicom"), (3000, "no_pixel_data"),
                                             (6310, "truncated_dicom")])
def test_truncation_anywhere_is_named(tmp_path, cut, error_class):
    folder = tmp_path / "cut"
    folder.mkdir()
    (folder / "ct").write_bytes(data_file("CT_small.dcm").read_bytes()[:cut])
    items, bad = scan(folder)
    assert not items and bad[0].error_class == error_class
    if error_class == "no_pixel_data":
        assert "truncated" in bad[0].reason and "CT Image Storage" in bad[0].reason


@pytest.mark.parametrize("orientation", ["RAI", "LPS"])
def test_rtstruct_contours_follow_the_pixels_into_canonical_order(tmp_path, orientation):
    ph, out = _phantom_folder(tmp_path, orientation, with_seg=False)
    items, bad = scan(out.study_dir)
    assert not bad and items[0].locator["rtstruct"] and not items[0].locator["seg"]
    item = READER.load(source(out.study_dir), items[0])
    assert set(item.label_names.values()) == set(out.roi_names) and out.roi_names
    for value, name in item.label_names.items():
        truth = ph.label_map == next(v for v, n in ph.label_names.items() if n == name)
        got = item.label_map == value
        assert 2 * (got & truth).sum() / (got.sum() + truth.sum()) > 0.8, name


# ------------------------------------------------------------------ one header parse per file


def _mr_series(folder: Path, name: str, n: int = 3) -> list[Path]:
    template = pydicom.dcmread(data_file(name))
    folder.mkdir(parents=True)
    paths = []
    for k in range(n):
        ds = pydicom.dcmread(data_file(name))
        ds.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["mr-series", name])
        ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["mr-series", name, str(k)])
        x, y, z = (float(v) for v in template.ImagePositionPatient)
        n_vec = np.cross(np.asarray(template.ImageOrientationPatient[:3], float),
                         np.asarray(template.ImageOrientationPatient[3:], float))
        ds.ImagePositionPatient = [x + k * n_vec[0], y + k * n_vec[1], z + k * n_vec[2]]
        path = folder / f"im{k}"
        ds.save_as(path, enforce_file_format=False)
        paths.append(path)
    return paths


@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_implicit.dcm"])
def test_slices_decoded_from_located_bytes_equal_a_full_read(tmp_path, name):
    """Slices after the first are decoded from the bytes scan located (no second header parse):
    the result must be exactly what a whole-file read gives, in every transfer syntax."""
    paths = _mr_series(tmp_path / "s", name)
    items, bad = scan(tmp_path / "s")
    assert not bad and len(items) == 1 and items[0].n_files == 3
    item = READER.load(source(tmp_path / "s"), items[0])
    truth = [pydicom.dcmread(p) for p in paths]
    stack = np.stack([ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1))
                      + float(ds.get("RescaleIntercept", 0)) for ds in truth]).astype(np.float32)
    assert item.pixels.shape == stack.shape
    # the same voxels up to the canonical flips (MR_small is axial, stored toward L and P)
    np.testing.assert_array_equal(np.sort(item.pixels.ravel()), np.sort(stack.ravel()))
    ref_item = READER.load(source(tmp_path / "s"), dataclasses.replace(items[0], hints={}))  # whole-file reads
    np.testing.assert_array_equal(item.pixels, ref_item.pixels)


def test_a_file_changed_after_the_scan_is_read_whole(tmp_path):
    paths = _mr_series(tmp_path / "s", "MR_small.dcm")
    items, _ = scan(tmp_path / "s")
    ds = pydicom.dcmread(paths[2])
    ds.ImageComments = "re-exported " * 20  # moves the pixel data 240 bytes further into the file
    ds.PixelData = (ds.pixel_array + 7).astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(paths[2])
    item = READER.load(source(tmp_path / "s"), items[0])
    fresh = READER.load(source(tmp_path / "s"), scan(tmp_path / "s")[0][0])
    np.testing.assert_array_equal(item.pixels, fresh.pixels)


def test_deflated_dicom_is_read(tmp_path):
    ref, item = load_one(tmp_path, "image_dfl.dcm")
    raw = pydicom.dcmread(data_file("image_dfl.dcm")).pixel_array
    assert item.pixels.shape == raw.shape and item.pixels.std() > 0
    np.testing.assert_array_equal(item.pixels, raw.astype(np.float32))


def test_series_gap_and_a_slice_without_position_are_volume_warnings(tmp_path):
    folder = tmp_path / "s"
    paths = _mr_series(folder, "MR_small.dcm", n=6)
    paths[3].unlink()
    paths[4].unlink()  # positions 0 1 2 5: a gap of two slices
    ds = pydicom.dcmread(paths[5])
    del ds.ImagePositionPatient
    ds.save_as(paths[5])  # ... and that last slice does not say where it lies
    items, rows = scan(folder)
    assert len(items) == 1 and items[0].n_files == 3  # 0 1 2; the positionless slice is not a stray 2D image
    assert [(r.error_class, r.severity) for r in rows] == [("series_missing_positions", "warning")]
    paths[5].unlink()
    pydicom.dcmread(paths[0]).save_as(folder / "late")
    ds = pydicom.dcmread(folder / "late")
    ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["late"])
    ds.ImagePositionPatient = [float(v) for v in ds.ImagePositionPatient]
    ds.ImagePositionPatient[2] = float(pydicom.dcmread(paths[2]).ImagePositionPatient[2]) + 3.0
    ds.save_as(folder / "late")
    items, rows = scan(folder)
    assert len(items) == 1 and items[0].n_files == 4
    assert [(r.error_class, r.severity) for r in rows] == [("series_gap", "warning")]
    assert "2 slices are missing" in rows[0].reason


def test_grid_affine_is_dicoms_equation(tmp_path):
    """highdicom's affine of a stack maps (slice, row, col) to the DICOM position of that voxel."""
    from medtrinity_assets.formats.dicom.geometry import series_grid

    paths = _mr_series(tmp_path / "s", "MR_small.dcm")
    datasets = [pydicom.dcmread(p) for p in paths]
    grid = series_grid(datasets)
    affine = grid.affine()
    for k, ds in enumerate(datasets):
        ipp = np.asarray(ds.ImagePositionPatient, float)
        np.testing.assert_allclose(affine @ [k, 0, 0, 1], [*ipp, 1], atol=1e-6)
        np.testing.assert_allclose((affine @ [k, 2, 3, 1])[:3], grid.pixel_centres(k)[2, 3], atol=1e-6)
