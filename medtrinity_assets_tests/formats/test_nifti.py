"""NiftiReader on nibabel's real test volumes, on synthetic orientation cases and on bad inputs."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medtrinity_assets.formats.base import ItemRef, ReadError, get_reader
from medtrinity_assets.formats.nifti import NiftiReader, probe_nifti
from medtrinity_assets_tests.support.formats import (
    blob_volume_ras,
    copy_nib,
    lps_affine,
    nib_data,
    open_spy,
    ras_affine,
    save_nifti,
    source,
    split,
    truncate,
)


def _load_all(src):
    reader = NiftiReader()
    refs, bad = split(reader.scan(src))
    return reader, refs, bad


def test_real_nibabel_volumes_load_canonical(tmp_path):
    folder = tmp_path / "brain"
    for name in ("anatomical.nii", "example4d.nii.gz", "functional.nii", "example_nifti2.nii.gz"):
        copy_nib(name, folder)
    src = source("brain_mr", "nifti", folder, modality="MR", organ="brain")
    reader, refs, bad = _load_all(src)
    assert bad == []
    assert [r.rel_path for r in refs] == ["anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz",
                                          "functional.nii"]
    items = {r.rel_path: reader.load(src, r) for r in refs}

    anat = items["anatomical.nii"]
    raw = nib.load(str(nib_data("anatomical.nii"))).get_fdata(dtype=np.float32)
    # stored LAS: axis 0 already toward Left, axis 1 toward Anterior (flip to Posterior), axis 2 Superior
    assert "".join(nib.aff2axcodes(nib.load(str(nib_data("anatomical.nii"))).affine)) == "LAS"
    np.testing.assert_array_equal(anat.pixels, raw.transpose(2, 1, 0)[:, ::-1, :])
    assert anat.pixels.shape == (25, 41, 33) and anat.pixels.dtype == np.float32
    assert anat.spacing == pytest.approx((2.0, 2.0, 2.0))
    assert (anat.col_toward, anat.row_toward, anat.slice_toward) == ("L", "P", "S")
    assert anat.modality == "MR" and anat.organ == "brain"
    assert anat.meta["orig_axcodes"] == "LAS"

    four_d = items["example4d.nii.gz"]
    assert four_d.pixels.shape == (24, 96, 128)
    assert four_d.meta["n_volumes"] == 2 and "first of 2 volumes" in four_d.meta["note"]
    assert four_d.spacing == pytest.approx((2.2, 2.0, 2.0), abs=1e-3)
    assert refs[1].n_frames == 24

    func = items["functional.nii"]
    assert func.pixels.shape == (3, 21, 17) and func.meta["n_volumes"] == 20
    assert func.spacing == pytest.approx((8.0, 4.0, 4.0))

    assert items["example_nifti2.nii.gz"].pixels.shape == (12, 20, 32)
    assert probe_nifti(nib_data("example_nifti2.nii.gz")).version == "nifti2"
    for item in items.values():
        assert np.isfinite(item.pixels).all()
        assert item.pixels.std() > 0  # real anatomy, not a blank


def test_get_reader_returns_nifti_reader():
    assert isinstance(get_reader("nifti"), NiftiReader)


def test_ras_and_lps_storage_give_identical_canonical_arrays(tmp_path):
    ras = blob_volume_ras()  # (x->R, y->A, z->S)
    spacing = (0.8, 0.9, 2.5)
    save_nifti(tmp_path / "v" / "ras.nii.gz", ras, ras_affine(spacing))
    # the same anatomy stored LPS: x and y flipped
    save_nifti(tmp_path / "v" / "lps.nii.gz", ras[::-1, ::-1, :].copy(), lps_affine(spacing))
    # and stored sagittally-permuted (axes: A, S, R) through nibabel's own reorientation
    img = nib.Nifti1Image(ras, ras_affine(spacing))
    perm = img.as_reoriented(nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"),
                                                              nib.orientations.axcodes2ornt("PIR")))
    perm.set_qform(perm.affine, code=1)
    nib.save(perm, str(tmp_path / "v" / "pir.nii.gz"))
    src = source("o", "nifti", tmp_path / "v", modality="CT")
    reader, refs, bad = _load_all(src)
    assert bad == [] and len(refs) == 3
    arrays = {r.rel_path: reader.load(src, r) for r in refs}
    a = arrays["ras.nii.gz"]
    np.testing.assert_array_equal(a.pixels, arrays["lps.nii.gz"].pixels)
    np.testing.assert_array_equal(a.pixels, arrays["pir.nii.gz"].pixels)
    assert a.pixels.shape == (10, 16, 20)  # (Z, H, W)
    assert a.spacing == pytest.approx((2.5, 0.9, 0.8))
    assert arrays["pir.nii.gz"].spacing == pytest.approx((2.5, 0.9, 0.8))
    # the blob sits on the patient's left: high column index (columns run toward Left)
    z, r, c = np.unravel_index(np.argmax(a.pixels), a.pixels.shape)
    assert c == 20 - 1 - 3 and c > a.pixels.shape[2] // 2
    # anterior blob -> low row index (rows run toward Posterior); superior -> high slice index
    z2, r2, c2 = np.argwhere((a.pixels > 40) & (a.pixels < 60)).mean(axis=0).round().astype(int)
    assert r2 == 16 - 1 - 13 and z2 == 8
    # the superior gradient grows with the slice index
    assert a.pixels[-1, 0, 0] > a.pixels[0, 0, 0]


def test_no_orientation_codes_means_unknown_sides(tmp_path):
    img = nib.Nifti1Image(blob_volume_ras(), ras_affine())
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    (tmp_path / "u").mkdir()
    nib.save(img, str(tmp_path / "u" / "nocode.nii"))
    src = source("u", "nifti", tmp_path / "u")
    reader, refs, bad = _load_all(src)
    item = reader.load(src, refs[0])
    assert (item.col_toward, item.row_toward, item.slice_toward) == ("", "", "")
    assert "unknown" in item.meta["orientation"]
    assert item.modality == "OT"


def test_label_maps_csv_and_subjects(tmp_path):
    ras = blob_volume_ras()
    labels = (ras >= 100).astype(np.uint8) + 2 * ((ras >= 50) & (ras < 60)).astype(np.uint8)
    for name in ("case_a.nii.gz", "case_b.nii.gz"):
        save_nifti(tmp_path / "images" / name, ras, ras_affine())
    save_nifti(tmp_path / "labels" / "case_a.nii.gz", labels.astype(np.float32), ras_affine())
    (tmp_path / "labels.csv").write_text(
        "filename,patient_id,modality,organ,tumour,diagnosis,view,patient_name\n"
        "case_a.nii.gz,P001,CT,liver,1,hepatoma;cyst,axial,Jane Doe\n"
        "case_b.nii.gz,,,,0,,,\n"
    )
    src = source("p", "nifti", tmp_path / "images", labels=tmp_path / "labels", labels_csv=tmp_path / "labels.csv",
                 label_names={1: "tumour"}, modality="MR", organ="abdomen", disease="cancer")
    reader, refs, bad = _load_all(src)
    assert bad == []
    a, b = refs
    assert a.subject_id == "P001" and b.subject_id == "case_b"
    assert a.identifiers == ("P001",)
    assert a.modality == "CT" and b.modality == "MR"
    item_a, item_b = reader.load(src, a), reader.load(src, b)
    assert item_a.modality == "CT" and item_a.organ == "liver" and item_a.disease == "cancer"
    assert item_a.labels == ["tumour", "hepatoma", "cyst"]
    assert item_a.meta["fields"] == {"view": "axial"}
    assert "Jane" not in repr(item_a.meta) and "Jane" not in repr(a.locator)
    assert item_a.label_map is not None and item_a.label_map.dtype == np.uint8
    assert item_a.label_map.shape == item_a.pixels.shape
    assert item_a.label_names == {1: "tumour", 2: "label_2"}
    # labels follow the image through the same reorientation
    np.testing.assert_array_equal(item_a.label_map == 1, item_a.pixels >= 100)
    assert item_b.label_map is None and item_b.labels == [] and item_b.organ == "abdomen"


def _bad_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "empty.nii.gz").write_bytes(b"")
    shutil.copyfile(nib_data("anatomical.nii"), folder / "plain_named_gz.nii.gz")  # not gzip
    (folder / "random.nii").write_bytes(np.random.default_rng(0).bytes(600))
    truncate(copy_nib("anatomical.nii", folder, "cut_plain.nii"), 0.5)
    return folder


def test_bad_files_are_quarantined_at_scan_with_reasons(tmp_path):
    folder = _bad_folder(tmp_path)
    good = copy_nib("anatomical.nii", folder, "good.nii")
    _, refs, bad = _load_all(source("b", "nifti", folder))
    assert [r.rel_path for r in refs] == [good.name]
    by_path = {q.rel_path: q for q in bad}
    assert by_path["empty.nii.gz"].error_class == "empty_file"
    assert by_path["plain_named_gz.nii.gz"].error_class == "not_gzip"
    assert "not gzip" in by_path["plain_named_gz.nii.gz"].reason
    assert by_path["random.nii"].error_class == "unreadable_header"
    assert by_path["cut_plain.nii"].error_class == "truncated"
    for q in bad:
        assert q.rel_path in q.reason or Path(q.rel_path).name in q.reason


@pytest.mark.parametrize("name,fraction", [("example4d.nii.gz", 0.6), ("anatomical.nii", 0.5)])
def test_truncated_gzip_fails_at_load_with_truncated(tmp_path, name, fraction):
    folder = tmp_path / "t"
    folder.mkdir()
    gz = folder / (name if name.endswith(".gz") else name + ".gz")
    raw = nib_data(name).read_bytes()
    gz.write_bytes(raw if name.endswith(".gz") else gzip.compress(raw))
    truncate(gz, fraction)
    src = source("t", "nifti", folder)
    reader, refs, bad = _load_all(src)
    assert bad == [] and len(refs) == 1  # the header survives the cut: scan stays cheap
    with pytest.raises(ReadError) as err:
        reader.load(src, refs[0])
    assert err.value.error_class == "truncated" and gz.name in err.value.reason


def test_gzip_that_is_not_nifti(tmp_path):
    folder = tmp_path / "g"
    folder.mkdir()
    with gzip.open(folder / "text.nii.gz", "wb") as fh:
        fh.write(b"hello, I am not a NIfTI header" * 20)
    _, refs, bad = _load_all(source("g", "nifti", folder))
    assert refs == [] and bad[0].error_class in ("unreadable_header", "truncated")


def test_all_nan_volume_and_partial_nan(tmp_path):
    folder = tmp_path / "n"
    save_nifti(folder / "nan.nii.gz", np.full((8, 8, 4), np.nan, np.float32), ras_affine())
    part = np.ones((8, 8, 4), np.float32)
    part[0, 0, 0] = np.nan
    save_nifti(folder / "part.nii.gz", part, ras_affine())
    src = source("n", "nifti", folder)
    reader, refs, bad = _load_all(src)
    assert bad == []
    with pytest.raises(ReadError) as err:
        reader.load(src, refs[0])
    assert err.value.error_class == "all_nan" and "nan.nii.gz" in err.value.reason
    item = reader.load(src, refs[1])
    assert np.isfinite(item.pixels).all() and item.meta["nonfinite_voxels_filled"] == 1


def test_label_map_of_other_shape_quarantines_the_pair(tmp_path):
    save_nifti(tmp_path / "img" / "x.nii.gz", np.zeros((8, 8, 4), np.int16), ras_affine())
    save_nifti(tmp_path / "lab" / "x.nii.gz", np.zeros((8, 8, 5), np.uint8), ras_affine())
    save_nifti(tmp_path / "img" / "y.nii.gz", np.zeros((8, 8, 4), np.int16), ras_affine())
    src = source("m", "nifti", tmp_path / "img", labels=tmp_path / "lab")
    reader, refs, bad = _load_all(src)
    assert [r.rel_path for r in refs] == ["y.nii.gz"]  # the good neighbour survives
    assert len(bad) == 1 and bad[0].error_class == "label_shape_mismatch"
    assert "label map x.nii.gz" in bad[0].reason and "image x.nii.gz" in bad[0].reason
    # load re-checks (a label file swapped after scan)
    ref = ItemRef(kind="nifti", locator={"image": "x.nii.gz", "label": "x.nii.gz"},
                  rel_path="x.nii.gz", subject_id="x")
    with pytest.raises(ReadError) as err:
        reader.load(src, ref)
    assert err.value.error_class == "label_shape_mismatch"


def test_fractional_label_map_is_refused(tmp_path):
    save_nifti(tmp_path / "img" / "x.nii.gz", np.zeros((6, 6, 3), np.int16), ras_affine())
    save_nifti(tmp_path / "lab" / "x.nii.gz", np.full((6, 6, 3), 0.5, np.float32), ras_affine())
    src = source("f", "nifti", tmp_path / "img", labels=tmp_path / "lab")
    reader, refs, _ = _load_all(src)
    with pytest.raises(ReadError) as err:
        reader.load(src, refs[0])
    assert err.value.error_class == "bad_label_map"


def test_csv_rows_outside_or_missing_are_quarantined_unread(tmp_path, monkeypatch):
    outside = copy_nib("anatomical.nii", tmp_path / "elsewhere", "secret.nii")
    inside = copy_nib("anatomical.nii", tmp_path / "images", "inside.nii")
    (tmp_path / "labels.csv").write_text(
        "filename,subject\n../elsewhere/secret.nii,S1\n" f"{outside},S2\nmissing.nii,S3\ninside.nii,S4\n"
    )
    src = source("c", "nifti", tmp_path / "images", labels_csv=tmp_path / "labels.csv")
    with open_spy(monkeypatch, outside) as hits:
        reader, refs, bad = _load_all(src)
        for r in refs:
            reader.load(src, r)
    assert hits == []
    assert [r.subject_id for r in refs] == ["S4"]
    classes = {q.rel_path: q.error_class for q in bad}
    assert classes["../elsewhere/secret.nii"] == "path_outside_source"
    assert classes[str(outside)] == "path_outside_source"
    assert classes["missing.nii"] == "missing_file"
    assert all("labels.csv line" in q.reason for q in bad)
    # the spy does see opens: scanning the inside file is recorded
    with open_spy(monkeypatch, inside) as control:
        list(NiftiReader().scan(src))
    assert control


def test_symlink_leading_out_of_the_folder_is_refused(tmp_path, monkeypatch):
    outside = copy_nib("anatomical.nii", tmp_path / "elsewhere", "secret.nii")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "link.nii").symlink_to(outside)
    with open_spy(monkeypatch, outside) as hits:
        _, refs, bad = _load_all(source("l", "nifti", tmp_path / "images"))
    assert hits == [] and refs == []
    assert bad[0].error_class == "path_outside_source"


def test_missing_source_folder_is_one_quarantine_row(tmp_path):
    _, refs, bad = _load_all(source("x", "nifti", tmp_path / "nope"))
    assert refs == [] and bad[0].error_class == "missing_source"


def test_voxel_limit(tmp_path):
    save_nifti(tmp_path / "v" / "big.nii.gz", np.zeros((10, 10, 10), np.uint8), ras_affine())
    _, refs, bad = _load_all(source("v", "nifti", tmp_path / "v", options={"max_voxels": 999}))
    assert refs == [] and bad[0].error_class == "too_large"


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_phantom_written_lps_and_ras_reads_back_as_the_truth(tmp_path, dtype):
    from medtrinity_assets.demo.phantom import make_phantom, side_of_column, write_label_nifti, write_nifti

    p = make_phantom(0, 2)  # lesions on both sides
    assert {les["side"] for les in p.lesions} == {"left", "right"}
    for orientation in ("LPS", "RAS"):
        write_nifti(p, tmp_path / "img" / f"{orientation}.nii.gz", orientation=orientation, dtype=dtype)
        write_label_nifti(p, tmp_path / "lab" / f"{orientation}.nii.gz", orientation=orientation)
    src = source("ph", "nifti", tmp_path / "img", labels=tmp_path / "lab", label_names=p.label_names, modality="CT")
    reader, refs, bad = _load_all(src)
    assert bad == [] and len(refs) == 2
    lps, ras = (reader.load(src, r) for r in refs)
    expected = p.volume_hu if dtype == "float32" else np.rint(p.volume_hu)
    for item in (lps, ras):
        np.testing.assert_allclose(item.pixels, expected, atol=1e-3)
        np.testing.assert_array_equal(item.label_map, p.label_map)
        assert item.spacing == pytest.approx(p.spacing)
        for les in p.lesions:  # the truth's side follows from the column of the lesion in our array
            zs, ys, xs = np.nonzero(item.label_map == les["label"])
            assert side_of_column(xs.mean(), item.pixels.shape[2]) == les["side"]
            assert item.label_names[les["label"]] == les["name"]


def test_2d_nifti_becomes_one_slice(tmp_path):
    plane = np.arange(12 * 10, dtype=np.float32).reshape(12, 10)  # (x->R, y->A)
    save_nifti(tmp_path / "p" / "plane.nii", plane, ras_affine((0.5, 0.7, 1.0)))
    src = source("p", "nifti", tmp_path / "p")
    reader, refs, bad = _load_all(src)
    item = reader.load(src, refs[0])
    assert item.pixels.shape == (1, 10, 12)
    np.testing.assert_array_equal(item.pixels[0], plane[::-1, ::-1].T)
    assert item.spacing[1:] == pytest.approx((0.7, 0.5))


def test_labels_folder_inside_the_image_folder_is_not_scanned_as_images(tmp_path):
    ras = blob_volume_ras()
    save_nifti(tmp_path / "d" / "a.nii.gz", ras, ras_affine())
    save_nifti(tmp_path / "d" / "labels" / "a.nii.gz", (ras >= 100).astype(np.uint8), ras_affine())
    src = source("d", "nifti", tmp_path / "d", labels=tmp_path / "d" / "labels", label_names={1: "blob"})
    reader, refs, bad = _load_all(src)
    assert bad == [] and [r.rel_path for r in refs] == ["a.nii.gz"]
    item = reader.load(src, refs[0])
    assert item.label_names == {1: "blob"} and int(item.label_map.sum()) == int((ras >= 100).sum())
