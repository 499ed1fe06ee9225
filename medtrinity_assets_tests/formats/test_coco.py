"""CocoReader on real scikit-image pictures with boxes, polygons and RLE, and on bad annotations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from pycocotools import mask as mask_utils

from medtrinity_assets.formats.base import ReadError, get_reader
from medtrinity_assets.formats.coco import CocoReader, clip_box
from medtrinity_assets_tests.support.formats import open_spy, save_png, source, split


def _write(root: Path, doc: dict, name: str = "annotations.json") -> None:
    (root / name).write_text(json.dumps(doc))


@pytest.fixture
def coco_root(tmp_path) -> Path:
    root = tmp_path / "coco"
    save_png(root / "images" / "ihc.png", skimage.data.immunohistochemistry())  # 512x512 RGB
    save_png(root / "camera.png", skimage.data.camera())  # 512x512 grey
    rle_mask = np.zeros((512, 512), np.uint8, order="F")
    rle_mask[100:150, 200:260] = 1
    rle = mask_utils.encode(np.asfortranarray(rle_mask))
    rle["counts"] = rle["counts"].decode()
    doc = {
        "images": [
            {"id": 1, "file_name": "ihc.png", "width": 512, "height": 512},
            {"id": 2, "file_name": "camera.png", "width": 512, "height": 512, "modality": "OT"},
            {"id": 3, "file_name": "missing.png", "width": 10, "height": 10},
            {"id": 4, "file_name": "../escape.png", "width": 10, "height": 10},
        ],
        "categories": [{"id": 1, "name": "nucleus"}, {"id": 7, "name": "gland"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40],
             "segmentation": [[10, 20, 40, 20, 40, 60, 10, 60]]},
            {"id": 11, "image_id": 1, "category_id": 7, "bbox": [500, 490, 50, 50]},  # sticks out: clipped
            {"id": 12, "image_id": 1, "category_id": 99, "bbox": [0, 0, 5, 5]},  # unknown category
            {"id": 13, "image_id": 1, "category_id": 1, "bbox": [600, 600, 5, 5]},  # wholly outside
            {"id": 14, "image_id": 2, "category_id": 7, "bbox": [200, 100, 60, 50], "segmentation": rle},
            {"id": 15, "image_id": 42, "category_id": 1, "bbox": [0, 0, 5, 5]},  # unknown image
            {"id": 16, "image_id": 2, "category_id": 1, "bbox": [1, 2, 0, 5]},  # no area
        ],
    }
    _write(root, doc)
    return root


def test_coco_images_boxes_masks_and_quarantine(coco_root, monkeypatch):
    src = source("coco", "coco", coco_root, modality="HISTO")
    reader = get_reader("coco")
    assert isinstance(reader, CocoReader)
    escape = coco_root.parent / "escape.png"
    save_png(escape, skimage.data.camera())
    with open_spy(monkeypatch, escape) as hits:
        refs, bad = split(reader.scan(src))
    assert hits == []
    assert [r.rel_path for r in refs] == ["ihc.png", "camera.png"]
    got = sorted((q.rel_path, q.error_class) for q in bad)
    assert got == sorted([
        ("missing.png", "missing_file"),
        ("../escape.png", "path_outside_source"),
        ("ihc.png#annotation 12", "unknown_category"),
        ("ihc.png#annotation 13", "box_outside_image"),
        ("annotations.json#annotation 15", "unknown_image"),
        ("camera.png#annotation 16", "bad_box"),
    ])
    assert "the image is kept" in next(q for q in bad if q.error_class == "unknown_category").reason

    ihc = reader.load(src, refs[0])
    assert ihc.pixels.shape == (512, 512, 3) and ihc.meta["rgb"] is True and ihc.modality == "HISTO"
    assert ihc.boxes == [{"label": "nucleus", "bbox": [10.0, 20.0, 40.0, 60.0]},
                         {"label": "gland", "bbox": [500.0, 490.0, 512.0, 512.0]}]
    assert ihc.meta["boxes_clipped"] == 1
    assert ihc.labels == ["gland", "nucleus"]
    assert ihc.label_map.shape == (512, 512) and ihc.label_names == {1: "nucleus"}
    ys, xs = np.nonzero(ihc.label_map == 1)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == pytest.approx((10, 40, 20, 60), abs=1)

    cam = reader.load(src, refs[1])
    assert cam.pixels.shape == (512, 512) and cam.modality == "OT"  # the image entry overrides the source
    assert refs[1].modality == "OT"
    assert cam.label_names == {7: "gland"}
    assert int((cam.label_map == 7).sum()) == 50 * 60
    assert cam.boxes == [{"label": "gland", "bbox": [200.0, 100.0, 260.0, 150.0]}]


def test_size_mismatch_and_json_discovery(tmp_path):
    root = tmp_path / "c"
    save_png(root / "a.png", skimage.data.camera())
    _write(root, {"images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 100}], "categories": [],
                  "annotations": []}, name="train.json")
    refs, bad = split(CocoReader().scan(source("c", "coco", root)))
    assert refs == [] and bad[0].error_class == "size_mismatch"
    _write(root, {"images": []}, name="other.json")
    refs, bad = split(CocoReader().scan(source("c", "coco", root)))
    assert bad[0].error_class == "ambiguous_coco_json"
    (root / "other.json").unlink()
    (root / "train.json").write_text("{oops")
    refs, bad = split(CocoReader().scan(source("c", "coco", root)))
    assert bad[0].error_class == "bad_coco_json"


def test_clip_box():
    assert clip_box([-5, -5, 10, 10], 20, 20) == ([0.0, 0.0, 5.0, 5.0], True)
    assert clip_box([1, 2, 3, 4], 20, 20) == ([1.0, 2.0, 4.0, 6.0], False)
    for bad in ([1, 2, 3], [1, 2, -3, 4], ["a", 1, 1, 1], [30, 30, 5, 5]):
        with pytest.raises(ReadError):
            clip_box(bad, 20, 20)
