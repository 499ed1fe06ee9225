"""item_to_slices on a phantom volume (with truth), a 2D grey image and an RGB image."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import data as skdata

from medtrinity_assets.demo.phantom import make_phantom
from medtrinity_assets.formats.base import ReadError, ReadItem
from medtrinity_assets.preprocess.encode import decode_png, encode_png
from medtrinity_assets.preprocess.item_images import item_to_slices
from medtrinity_assets.preprocess.phash import phash_hex
from medtrinity_assets.preprocess.windowing import CT_PRESETS


def _phantom_item(index=2, **kw):
    p = make_phantom(0, index)
    item = ReadItem(pixels=p.volume_hu, modality="CT", spacing=p.spacing, col_toward="L", row_toward="P",
                    slice_toward="S", label_map=p.label_map, label_names=p.label_names, **kw)
    return p, item


def test_phantom_volume_keeps_every_lesion_slice_plus_context():
    p, item = _phantom_item()
    slices = item_to_slices(item, max_side=512, context_slices=3, organ="abdomen")
    got = [s.slice_index for s in slices]
    assert got == sorted(got)
    lesion_slices = {z for les in p.lesions for z in les["slices"]}
    assert lesion_slices <= set(got)
    assert {8, 24, 40} <= set(got)  # context of 48 slices
    assert len(got) < p.shape[0]  # anatomy on every slice does not select the whole volume
    for s in slices:
        assert s.image.dtype == np.uint8 and s.image.shape == (128, 128)
        assert s.values.dtype == np.float32 and s.values.shape == s.image.shape
        assert np.array_equal(s.values, p.volume_hu[s.slice_index])  # no resize needed at 128
        assert np.array_equal(s.label_map, p.label_map[s.slice_index])
        assert s.n_slices == 48 and s.neighbours == [n for n in (s.slice_index - 1, s.slice_index + 1) if 0 <= n < 48]
        assert s.window_name == "ct:abdomen(50/400)" and (s.window_center, s.window_width) == CT_PRESETS["abdomen"]
        assert s.spacing == (1.5, 1.5) and s.orig_size == (128, 128)
        assert s.phash == phash_hex(s.image)
    # grey levels follow the window: a lesion's mean grey matches its mean HU through the window
    les = p.lesions[0]
    s = next(s for s in slices if s.slice_index == les["centre_voxel"][0])
    mask = s.label_map == les["label"]
    expected = (s.values[mask].mean() - (50 - 200)) * 255 / 400
    assert abs(s.image[mask].mean() - np.clip(expected, 0, 255)) < 2


def test_downscaled_volume_keeps_areas_and_spacing():
    p, item = _phantom_item(index=1)
    slices = item_to_slices(item, max_side=64, context_slices=0)
    for s in slices:
        assert s.image.shape == (64, 64) and s.label_map.shape == (64, 64)
        assert s.spacing == (3.0, 3.0)
    les = p.lesions[0]
    z = les["centre_voxel"][0]
    s = next(s for s in slices if s.slice_index == z)
    area_mm2 = np.count_nonzero(s.label_map == les["label"]) * 9.0
    true_mm2 = les["slice_areas_px"][z] * 2.25
    assert area_mm2 == pytest.approx(true_mm2, rel=0.35, abs=20)


def test_lung_window_for_chest_and_percentile_for_mr():
    p, item = _phantom_item()
    assert item_to_slices(item, context_slices=1, organ="chest")[0].window_name.startswith("ct:lung")
    mr = ReadItem(pixels=np.abs(p.volume_hu) / 3.0, modality="MR", spacing=p.spacing)
    slices = item_to_slices(mr, context_slices=2)
    assert [s.slice_index for s in slices] == [12, 36]
    assert all(s.window_name == "percentile(0.5-99.5)" for s in slices)
    assert slices[0].window_center == slices[1].window_center  # one window per item


def test_2d_grey_with_boxes_is_resized_and_boxes_normalised():
    cam = skdata.camera().astype(np.float32)  # 512x512
    item = ReadItem(pixels=cam[:, :400], modality="CR", spacing=(0.2, 0.2),
                    boxes=[{"label": "nodule", "bbox": [40, 128, 200, 256]}, {"label": "off", "bbox": [500, 0, 600, 10]}])
    (s,) = item_to_slices(item, max_side=256)
    assert s.image.shape == (256, 200) and s.slice_index == -1 and s.neighbours == [] and s.n_slices == 1
    assert s.orig_size == (512, 400)
    assert s.spacing == pytest.approx((0.4, 0.4))
    assert s.boxes == [{"label": "nodule", "bbox": [0.1, 0.25, 0.5, 0.5]}]
    assert s.label_map is None and s.values.shape == (256, 200)


def test_rgb_image_passes_through():
    astro = skdata.astronaut()  # 512x512x3 uint8
    item = ReadItem(pixels=astro.astype(np.float32), modality="OT", spacing=(math.nan, math.nan), meta={"rgb": True})
    (s,) = item_to_slices(item, max_side=128)
    assert s.image.shape == (128, 128, 3) and s.image.dtype == np.uint8
    assert s.values is None and s.window_name == "rgb" and math.isnan(s.window_center)
    assert math.isnan(s.spacing[0])
    assert np.array_equal(decode_png(encode_png(s.image)), s.image)
    (full,) = item_to_slices(item, max_side=512)
    assert np.array_equal(full.image, astro)


def test_unusable_inputs_raise_read_errors():
    with pytest.raises(ReadError) as e:
        item_to_slices(ReadItem(pixels=np.full((4, 8, 8), np.nan, dtype=np.float32), modality="CT", spacing=(1, 1, 1)))
    assert e.value.error_class == "all_nan"
    with pytest.raises(ReadError) as e:
        item_to_slices(ReadItem(pixels=np.zeros((4, 8, 8), np.float32), modality="CT", spacing=(1, 1, 1),
                                label_map=np.zeros((4, 8, 9), np.uint8)))
    assert e.value.error_class == "label_shape_mismatch"
    # a few NaN pixels are tolerated (set to the minimum)
    px = np.arange(64, dtype=np.float32).reshape(8, 8)
    px[0, 0] = np.nan
    (s,) = item_to_slices(ReadItem(pixels=px, modality="MR", spacing=(1, 1)))
    assert s.values[0, 0] == 1.0


def test_colour_frames_and_channel_axis():
    frames = np.stack([np.full((20, 30, 3), v, dtype=np.float32) for v in (10, 60, 110, 160, 210, 250)])
    slices = item_to_slices(ReadItem(pixels=frames, modality="US", spacing=(1, 1, 1), meta={"rgb": True}),
                            context_slices=2)
    assert [s.slice_index for s in slices] == [1, 4]
    assert [int(s.image[0, 0, 0]) for s in slices] == [60, 210]
    assert all(s.values is None and s.window_name == "rgb" and s.n_slices == 6 for s in slices)
    (s,) = item_to_slices(ReadItem(pixels=np.arange(12, dtype=np.float32).reshape(3, 4, 1), modality="MR",
                                   spacing=(1, 1)))
    assert s.image.shape == (3, 4) and s.slice_index == -1
