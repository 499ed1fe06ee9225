"""Windowing, slice selection, resizing, encoding and hashing: the building blocks of item_to_slices."""

from __future__ import annotations

import re

import numpy as np
import pytest
from skimage import data as skdata

from medtrinity_assets.preprocess.encode import (
    decode_png,
    decode_values,
    encode_label_png,
    encode_png,
    encode_values,
)
from medtrinity_assets.preprocess.phash import hamming, phash_hex
from medtrinity_assets.preprocess.resize import resize_image, target_size
from medtrinity_assets.preprocess.slice_selection import context_slices, finding_labels, neighbours, select_slices
from medtrinity_assets.preprocess.windowing import (
    apply_window,
    choose_window,
    ct_window,
    percentile_window,
    preset_for,
)

# ---------------------------------------------------------------- windowing


def test_ct_lung_window_maps_edges_and_centre():
    w = ct_window("lung")
    assert (w.center, w.width) == (-600.0, 1500.0)
    out = apply_window(np.array([-1350.0, -600.0, 150.0, -2000.0, 3000.0, np.nan], dtype=np.float32), w)
    assert out.tolist() == [0, 128, 255, 0, 255, 0]


@pytest.mark.parametrize(
    "organ,modality,name",
    [
        ("Chest", "CT", "lung"),
        ("liver", "ct", "abdomen"),
        ("HEAD", "CT", "brain"),
        ("lumbar spine", "CT", "bone"),
        ("knee", "CT", "soft_tissue"),
        (None, "CT", "soft_tissue"),
    ],
)
def test_preset_for_organ(organ, modality, name):
    assert preset_for(organ, modality).name.startswith(f"ct:{name}(")


def test_no_preset_outside_ct():
    assert preset_for("brain", "MR") is None
    assert preset_for("chest", None) is None


def test_percentile_window_for_mr_and_ct_screenshot_fallback():
    rng = np.random.default_rng(0)
    mr = rng.gamma(2.0, 200.0, size=(64, 64)).astype(np.float32)
    w = choose_window(mr, "MR", "brain")
    assert w.name == "percentile(0.5-99.5)"
    lo, hi = np.percentile(mr, [0.5, 99.5])
    assert w.center == pytest.approx((lo + hi) / 2, rel=1e-5) and w.width == pytest.approx(hi - lo, rel=1e-5)
    img = apply_window(mr, w)
    assert img.min() == 0 and img.max() == 255
    # an 8-bit picture labelled CT holds no HU: it must not be put through a HU preset
    screenshot = rng.integers(0, 256, size=(32, 32)).astype(np.float32)
    assert choose_window(screenshot, "CT", "chest").name.startswith("percentile")
    hu = screenshot * 4 - 1000
    assert choose_window(hu, "CT", "chest").name.startswith("ct:lung")


def test_percentile_window_of_constant_image_is_usable():
    w = percentile_window(np.full((4, 4), 7.0, dtype=np.float32))
    assert w.width > 0
    with pytest.raises(ValueError):
        percentile_window(np.full((2, 2), np.nan))


# ---------------------------------------------------------------- slice selection


def test_select_slices_keeps_every_ground_truth_slice_plus_context():
    lm = np.zeros((40, 8, 8), dtype=np.uint8)
    lm[[5, 6, 7, 31], 2, 2] = 1
    chosen = select_slices(40, lm, context=4)
    assert {5, 6, 7, 31} <= set(chosen)
    assert set(context_slices(40, 4)) == {5, 15, 25, 35}
    assert chosen == sorted({5, 6, 7, 31, 15, 25, 35})
    assert select_slices(40, None, context=0) == [20]  # never drop a volume
    assert select_slices(40, lm, context=0) == [5, 6, 7, 31]
    with pytest.raises(ValueError):
        select_slices(39, lm)


def test_findings_not_anatomy_decide_ground_truth_slices():
    lm = np.zeros((10, 4, 4), dtype=np.uint8)
    lm[:, 0, 0] = 5  # bone on every slice
    lm[4, 1, 1] = 10
    names = {5: "bone", 10: "liver tumour"}
    wanted = finding_labels(names, {5, 10})
    assert wanted == {10}
    assert select_slices(10, lm, context=0, labels=wanted) == [4]
    assert finding_labels({1: "liver", 2: "spleen"}, {1, 2}) == {1, 2}  # anatomy only: all count


def test_neighbours_are_clipped():
    assert neighbours(0, 5) == [1]
    assert neighbours(2, 5) == [1, 3]
    assert neighbours(4, 5, k=2) == [2, 3]


# ---------------------------------------------------------------- resize


def test_resize_keeps_aspect_and_only_shrinks():
    img = np.random.default_rng(1).random((300, 1200)).astype(np.float32)
    out, (sy, sx) = resize_image(img, 512)
    assert out.shape == (128, 512) and out.dtype == np.float32
    assert sy == pytest.approx(128 / 300) and sx == pytest.approx(512 / 1200)
    same, scale = resize_image(img[:100, :200], 512)
    assert same.shape == (100, 200) and scale == (1.0, 1.0)
    assert target_size(100, 200, 400, upscale=True) == (200, 400)


def test_label_resize_is_nearest_and_invents_no_values():
    lm = np.zeros((200, 200), dtype=np.uint8)
    lm[50:150, 50:150] = 3
    lm[60:70, 60:70] = 12
    out, _ = resize_image(lm, 100, is_label=True)
    assert out.shape == (100, 100)
    assert set(np.unique(out)) == {0, 3, 12}
    assert np.count_nonzero(out == 3) + np.count_nonzero(out == 12) == pytest.approx(2500, abs=100)


def test_image_resize_is_antialiased():
    stripes = np.tile(np.array([0.0, 1000.0], dtype=np.float32), (64, 32))  # 1-pixel stripes
    out, _ = resize_image(stripes, 16)
    assert np.allclose(out, 500.0, atol=60)  # averaged, not aliased to 0 or 1000


# ---------------------------------------------------------------- encode


def test_png_round_trip_and_deterministic_bytes():
    grey = (np.arange(64 * 48) % 256).astype(np.uint8).reshape(48, 64)
    rgb = np.stack([grey, grey[::-1], 255 - grey], axis=-1)
    for arr in (grey, rgb):
        data = encode_png(arr)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert encode_png(arr.copy()) == data
        assert np.array_equal(decode_png(data), arr)
    with pytest.raises(ValueError):
        encode_png(grey.astype(np.float32))


def test_label_png_8_and_16_bit():
    small = np.array([[0, 1], [255, 3]], dtype=np.int32)
    big = np.array([[0, 300], [65535, 3]], dtype=np.int32)
    assert np.array_equal(decode_png(encode_label_png(small)), small)
    assert np.array_equal(decode_png(encode_label_png(big)).astype(np.int32), big)
    with pytest.raises(ValueError):
        encode_label_png(np.array([[-1]]))


def test_values_npy_round_trip():
    v = np.linspace(-1000, 1000, 12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(decode_values(encode_values(v)), v)


# ---------------------------------------------------------------- phash


def test_phash_is_stable_under_resize_and_differs_between_images():
    cam = skdata.camera()
    h1 = phash_hex(cam)
    assert re.fullmatch(r"[0-9a-f]{16}", h1)
    small, _ = resize_image(cam.astype(np.float32), 128)
    h2 = phash_hex(np.clip(small, 0, 255).astype(np.uint8))
    assert hamming(h1, h2) <= 4
    other = phash_hex(skdata.coins())
    assert hamming(h1, other) > 16
    assert phash_hex(skdata.astronaut()) != h1  # RGB accepted
    with pytest.raises(ValueError):
        hamming("ab", "abc")
