"""ImageFolderReader and the shared image guards on scikit-image's real images and on bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image
from pydantic import ValidationError

from medtrinity_assets.formats import safety
from medtrinity_assets.formats.base import ReadError, get_reader
from medtrinity_assets.formats.image_folder import ImageFolderReader
from medtrinity_assets_tests.support.formats import open_spy, png_with_declared_size, save_png, source, split, truncate


@pytest.fixture
def real_folder(tmp_path) -> Path:
    folder = tmp_path / "imgs"
    save_png(folder / "retina.png", skimage.data.retina())
    save_png(folder / "ihc.png", skimage.data.immunohistochemistry())
    (folder / "sub").mkdir()
    Image.fromarray(skimage.data.camera()).save(folder / "sub" / "camera.jpg", quality=95)
    save_png(folder / "phantom16.png", (skimage.data.shepp_logan_phantom() * 4000).astype(np.uint16))
    Image.fromarray(skimage.data.camera()).save(folder / "camera.tif")
    Image.fromarray(skimage.data.camera()).save(folder / "camera.bmp")
    (folder / "labels.csv").write_text(
        "filename,subject,modality,organ,disease,finding,view,referring_physician\n"
        "retina.png,eye01,FUNDUS,eye,diabetic retinopathy,microaneurysm|haemorrhage,posterior pole,Dr Who\n"
        "ihc.png,,HISTO,colon,,,,\n"
    )
    return folder


def test_real_images_load_grey_rgb_and_16bit(real_folder):
    src = source("sk", "image_folder", real_folder, labels_csv=real_folder / "labels.csv", modality="OT")
    reader = get_reader("image_folder")
    assert isinstance(reader, ImageFolderReader)
    refs, bad = split(reader.scan(src))
    assert bad == []
    rels = [r.rel_path for r in refs]
    assert sorted(rels) == sorted(["retina.png", "ihc.png", "sub/camera.jpg", "phantom16.png", "camera.tif",
                                   "camera.bmp"])
    items = {r.rel_path: (r, reader.load(src, r)) for r in refs}

    ref, retina = items["retina.png"]
    assert ref.subject_id == "eye01" and ref.modality == "FUNDUS" and ref.identifiers == ("eye01",)
    assert retina.pixels.shape == (1411, 1411, 3) and retina.pixels.dtype == np.float32
    assert retina.meta["rgb"] is True and retina.is_volume is False
    np.testing.assert_array_equal(retina.pixels, skimage.data.retina().astype(np.float32))
    assert (retina.modality, retina.organ, retina.disease) == ("FUNDUS", "eye", "diabetic retinopathy")
    assert retina.labels == ["microaneurysm", "haemorrhage"]
    assert retina.meta["fields"] == {"view": "posterior pole"}
    assert "Dr Who" not in repr(retina.meta)  # not allow-listed: dropped
    assert (retina.col_toward, retina.row_toward) == ("", "")
    assert all(np.isnan(s) for s in retina.spacing)

    _, ihc = items["ihc.png"]
    assert ihc.modality == "HISTO" and ihc.organ == "colon" and ihc.pixels.shape == (512, 512, 3)

    ref, cam = items["camera.tif"]
    assert cam.pixels.shape == (512, 512) and cam.meta["rgb"] is False and cam.modality == "OT"
    np.testing.assert_array_equal(cam.pixels, skimage.data.camera().astype(np.float32))
    assert ref.subject_id == "camera"
    np.testing.assert_array_equal(items["camera.bmp"][1].pixels, cam.pixels)
    jpg = items["sub/camera.jpg"][1].pixels
    assert jpg.shape == (512, 512) and np.abs(jpg - cam.pixels).mean() < 5  # lossy but the same picture

    _, p16 = items["phantom16.png"]
    assert p16.pixels.max() > 255  # 16-bit values kept, not squashed to 8 bits
    assert p16.pixels.max() == pytest.approx(4000, abs=1)


def test_radiological_display_and_spacing_options(tmp_path):
    save_png(tmp_path / "cxr" / "a.png", skimage.data.camera())
    src = source("cxr", "image_folder", tmp_path / "cxr", modality="DX",
                 options={"display": "radiological", "pixel_spacing": [0.2, 0.2]})
    reader = ImageFolderReader()
    refs, _ = split(reader.scan(src))
    item = reader.load(src, refs[0])
    assert (item.col_toward, item.row_toward) == ("L", "I")
    assert item.spacing == (0.2, 0.2)
    with pytest.raises(ValidationError, match="display"):  # a bad option stops at configuration, before any read
        source("c", "image_folder", tmp_path / "cxr", options={"display": "sideways"})


def test_bad_images_are_quarantined(tmp_path):
    folder = tmp_path / "bad"
    save_png(folder / "good.png", skimage.data.camera())
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("I am a text file with an image name\n")
    (folder / "random.jpg").write_bytes(np.random.default_rng(1).bytes(2000))
    png_with_declared_size(folder / "bomb.png", 40_000, 40_000)  # 1.6 gigapixels declared, ~100 bytes on disk
    save_png(folder / "big_for_limit.png", np.zeros((600, 600), np.uint8))
    truncate(save_png(folder / "cut.png", skimage.data.camera()), 0.5)
    (folder / "notes.txt").write_text("not an image extension: a row of its own, never a silent skip")
    src = source("bad", "image_folder", folder, options={"max_pixels": 300_000})
    reader = ImageFolderReader()
    refs, bad = split(reader.scan(src))
    by = {q.rel_path: q for q in bad}
    assert by["empty.png"].error_class == "empty_file"
    assert by["text.png"].error_class == "not_an_image"
    assert by["random.jpg"].error_class == "not_an_image"
    assert by["bomb.png"].error_class == "decompression_bomb" and "max_pixels" in by["bomb.png"].reason
    assert by["big_for_limit.png"].error_class == "decompression_bomb"
    assert by["notes.txt"].error_class == "unsupported_file_kind" and "notes.txt" in by["notes.txt"].reason
    assert sorted(r.rel_path for r in refs) == ["cut.png", "good.png"]
    cut = next(r for r in refs if r.rel_path == "cut.png")
    with pytest.raises(ReadError) as err:
        reader.load(src, cut)
    assert err.value.error_class == "truncated" and "cut.png" in err.value.reason
    good = next(r for r in refs if r.rel_path == "good.png")
    assert reader.load(src, good).pixels.shape == (512, 512)


def test_default_bomb_limit_and_pillow_global_restored(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    bomb = png_with_declared_size(tmp_path / "bomb.png", 20_000, 20_000)  # 400 MP > default 89 MP
    with pytest.raises(ReadError) as err:
        safety.probe_image(bomb)
    assert err.value.error_class == "decompression_bomb"
    # just over the default: Pillow only warns; we still refuse it
    warn = png_with_declared_size(tmp_path / "warn.png", 10_000, 10_000)
    with pytest.raises(ReadError) as err:
        safety.read_image(warn)
    assert err.value.error_class == "decompression_bomb"
    assert Image.MAX_IMAGE_PIXELS == before
    # a generous per-source limit lets the header through (the file is then found truncated at decode)
    assert safety.probe_image(warn, max_pixels=200_000_000).width == 10_000


def test_csv_rows_outside_and_missing(tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    save_png(folder / "a.png", skimage.data.camera())
    secret = save_png(tmp_path / "private" / "secret.png", skimage.data.camera())
    (folder / "labels.csv").write_text(
        "filename,label\n"
        "../private/secret.png,x\n"
        f"{secret},x\n"
        "sub/../../private/secret.png,x\n"
        "gone.png,y\n"
        "a.png,z\n"
        "a.png,dup\n"
    )
    src = source("c", "image_folder", folder, labels_csv=folder / "labels.csv")
    reader = ImageFolderReader()
    with open_spy(monkeypatch, secret) as hits:
        refs, bad = split(reader.scan(src))
        for r in refs:
            reader.load(src, r)
    assert hits == []  # never opened
    assert [r.rel_path for r in refs] == ["a.png"]
    classes = sorted((q.error_class, q.rel_path) for q in bad)
    assert classes == sorted([
        ("path_outside_source", "../private/secret.png"),
        ("path_outside_source", str(secret)),
        ("path_outside_source", "sub/../../private/secret.png"),
        ("missing_file", "gone.png"),
        ("duplicate_row", "a.png"),
    ])
    assert all("labels.csv line" in q.reason for q in bad)
    assert reader.load(src, refs[0]).labels == ["z"]
    # control: the spy does record opens of a file that is read
    with open_spy(monkeypatch, folder / "a.png") as control:
        list(reader.scan(src))
    assert control


def test_csv_without_filename_column(tmp_path):
    save_png(tmp_path / "f" / "a.png", skimage.data.camera())
    (tmp_path / "f" / "labels.csv").write_text("file,label\na.png,x\n")
    src = source("c", "image_folder", tmp_path / "f", labels_csv=tmp_path / "f" / "labels.csv")
    refs, bad = split(ImageFolderReader().scan(src))
    assert [q.error_class for q in bad] == ["bad_labels_csv"] and "filename" in bad[0].reason
    assert [r.rel_path for r in refs] == ["a.png"]  # images are still usable without labels


def test_inside_root_rules(tmp_path):
    (tmp_path / "root").mkdir()
    assert safety.inside_root(tmp_path / "root", "a/b.png") == (tmp_path / "root" / "a" / "b.png").resolve()
    for bad in ("../x.png", "/etc/passwd", "a/../../x.png", "", "a\x00b.png"):
        with pytest.raises(ReadError):
            safety.inside_root(tmp_path / "root", bad)


def test_exif_orientation_is_applied(tmp_path):
    photo = skimage.data.astronaut()[:300, :200]  # 300 rows x 200 cols
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate 90 degrees clockwise
    (tmp_path / "p").mkdir()
    Image.fromarray(photo).save(tmp_path / "p" / "phone.jpg", exif=exif.tobytes(), quality=95)
    pixels, notes = safety.read_image(tmp_path / "p" / "phone.jpg")
    assert pixels.shape == (200, 300, 3) and notes["exif_rotated"] is True
    upright = np.rot90(photo, k=-1).astype(np.float32)  # clockwise
    assert np.abs(pixels - upright).mean() < 6


def test_quarantine_rows_scrub_the_rows_subject(tmp_path):
    folder = tmp_path / "f"
    save_png(folder / "ok.png", skimage.data.camera())
    (folder / "labels.csv").write_text("filename,patient_id\nDOE_JANE_778812/cxr.png,DOE^JANE 778812\n"
                                       "../DOE_JANE_778812.png,DOE^JANE 778812\n")
    src = source("s", "image_folder", folder, labels_csv=folder / "labels.csv")
    _, bad = split(ImageFolderReader().scan(src))
    assert len(bad) == 2
    for q in bad:
        assert "778812" not in q.rel_path + q.reason and "JANE" not in (q.rel_path + q.reason).upper()
        assert "[redacted]" in q.rel_path


def test_grey_picture_stored_as_rgb_is_grey(tmp_path):
    cam = skimage.data.camera()
    save_png(tmp_path / "rgbgrey.png", np.stack([cam] * 3, axis=-1))
    Image.fromarray(np.stack([cam] * 3, axis=-1)).save(tmp_path / "rgbgrey.jpg", quality=90)
    for name in ("rgbgrey.png", "rgbgrey.jpg"):
        pixels, notes = safety.read_image(tmp_path / name)
        assert pixels.shape == (512, 512) and notes["rgb"] is False and notes["grey_stored_as_rgb"] is True
    pixels, notes = safety.read_image(save_png(tmp_path / "ihc.png", skimage.data.immunohistochemistry()))
    assert pixels.shape == (512, 512, 3) and notes["rgb"] is True
