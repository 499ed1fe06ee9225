"""Label maps and boxes -> ROI rows (every component kept, anatomy vs findings, errors as rows, never silent)."""

from __future__ import annotations

import json

import numpy as np

from medtrinity_assets.preprocess.encode import encode_label_png, encode_png, encode_values
from medtrinity_assets.roi import rle
from medtrinity_assets.roi.build import RoiSettings, describe_partition
from medtrinity_assets.roi.ground_truth import from_boxes, from_label_map, label_kind
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.roi import disk

H, W = 96, 128


def _row(layout: DataLayout, values: np.ndarray, label_map: np.ndarray | None, names: dict, boxes=None, **kw) -> dict:
    grey = np.clip((values + 200) / 400 * 255, 0, 255).astype(np.uint8)
    row = {
        "sample_id": kw.pop("sample_id", "s1"), "source": "t", "shard": "s00", "modality": "CT", "organ": "abdomen",
        "image_path": layout.put_blob(encode_png(grey), ".png")[0],
        "values_path": layout.put_blob(encode_values(values), ".npy")[0],
        "width": values.shape[1], "height": values.shape[0], "orig_width": values.shape[1],
        "pixel_spacing": [0.8, 0.8], "col_toward": "L", "row_toward": "P",
        "gt_mask_path": layout.put_blob(encode_label_png(label_map), ".png")[0] if label_map is not None else None,
        "gt_label_names_json": json.dumps({str(k): v for k, v in names.items()}),
        "gt_boxes_json": json.dumps(boxes) if boxes else None,
    }
    row.update(kw)
    return row


def _scene():
    body = disk((H, W), 48, 64, 44)
    values = np.where(body, 40.0, -1000.0).astype(np.float32)
    liver = body & disk((H, W), 45, 40, 22)
    values[liver] = 60.0
    lab = np.zeros((H, W), np.uint8)
    lab[liver] = 1
    for cy, cx in ((40, 35), (55, 45)):  # two tumours: one label, two components
        m = disk((H, W), cy, cx, 5)
        lab[m] = 2
        values[m] = 20.0
    lab[80, 100] = 2  # a 1-pixel speck: dropped below min_component_pixels
    return values, lab


def test_label_map_becomes_component_rows(tmp_path):
    layout = DataLayout(tmp_path)
    values, lab = _scene()
    rows, stats = describe_partition([_row(layout, values, lab, {1: "liver", 2: "liver tumour"})], layout,
                                     "ground_truth", [], RoiSettings(min_component_pixels=9))
    tumours = [r for r in rows if r["label"] == "liver tumour"]
    assert len(tumours) == 2 and {r["component"] for r in tumours} == {0, 1} and all(r["n_components"] == 2 for r in tumours)
    assert stats.dropped_components == 1 and stats.by_label["liver tumour"] == 2
    (liver,) = [r for r in rows if r["label"] == "liver"]
    assert liver["kind"] == "anatomy" and all(t["kind"] == "finding" for t in tumours)
    for t in tumours:
        m = rle.decode(t["mask_rle"])
        assert m.sum() == t["area_pixels"] == int(disk((H, W), 40, 35, 5).sum())
        rel = json.loads(t["relations_json"])
        assert rel["inside"] == ["liver"] and rel["multiple_lesions"] and rel["n_lesions"] == 2
        assert t["intensity"] == "hypodense" and t["region"] == "liver" and t["side"] == "right"
        assert abs(t["area_mm2"] - t["area_pixels"] * 0.64) < 1e-6 and t["origin"] == "ground_truth" and t["confidence"] == 1.0


def test_bad_ground_truth_becomes_error_rows(tmp_path):
    layout = DataLayout(tmp_path)
    values, lab = _scene()
    wrong = _row(layout, values, lab[:50], {1: "liver"}, sample_id="wrong_shape")
    boxes = [{"label": "nodule", "bbox": [0.5, 0.5, 0.4, 0.6]}, {"label": "mass", "bbox": [0.1, 0.1, 0.3, 0.3]},
             {"label": "junk", "bbox": "x"}]
    boxed = _row(layout, values, None, {}, boxes=boxes, sample_id="boxes")
    missing = _row(layout, values, None, {}, sample_id="no_values", values_path="blobs/xx/missing.npy")
    rows, stats = describe_partition([wrong, boxed, missing], layout, "ground_truth", [], RoiSettings())
    by = {}
    for r in rows:
        by.setdefault(r["sample_id"], []).append(r)
    assert by["wrong_shape"][0]["status"] == "error" and "differs from the image" in by["wrong_shape"][0]["error"]
    errs = [r for r in by["boxes"] if r["status"] == "error"]
    assert {r["label"] for r in errs} == {"nodule", "junk"}
    (mass,) = [r for r in by["boxes"] if r["status"] == "ok"]
    assert mass["bbox"] == [12 / W, 9 / H, 39 / W, 29 / H] and mass["kind"] == "finding"
    assert by["no_values"][0]["status"] == "error" and "unreadable" in by["no_values"][0]["error"]
    assert stats.errors == 4


def test_label_kinds_and_overrides():
    assert label_kind("Liver") == "anatomy" and label_kind("right kidney") == "anatomy"
    assert label_kind("liver tumour") == "finding" and label_kind("GTV") == "finding"
    assert label_kind("GTV", {"gtv": "anatomy"}) == "anatomy"
    lab = np.zeros((4, 4), np.uint8)
    lab[0, 0] = 7
    (c,) = from_label_map(lab, {}, (4, 4))
    assert c.label == "label_7" and c.mask.sum() == 1
    (e,) = from_boxes([{"label": "x", "bbox": [0.1, 0.1, 0.1, 0.2]}], (4, 4))
    assert e.mask is None and "not a normalised" in e.error


def test_none_mode_and_rgb_images(tmp_path):
    layout = DataLayout(tmp_path)
    values, lab = _scene()
    row = _row(layout, values, lab, {1: "liver"})
    assert describe_partition([row], layout, "none", [], RoiSettings())[0] == []
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[disk((H, W), 40, 40, 12)] = (200, 80, 80)
    rgb_row = _row(layout, values, None, {}, boxes=[{"label": "lesion", "bbox": [0.2, 0.25, 0.45, 0.6]}],
                   image_path=layout.put_blob(encode_png(rgb), ".png")[0], values_path=None, modality="DERM",
                   pixel_spacing=[float("nan")] * 2, col_toward="", row_toward="")
    rows, _ = describe_partition([rgb_row], layout, "ground_truth", [], RoiSettings())
    (r,) = rows
    assert r["status"] == "ok" and r["side"] == "unknown" and r["area_mm2"] is None and r["intensity"] in ("brighter", "darker", "similar")


def _rows_from_dicom_gt(tmp_path, label_map, names, pixel_spacing, prefix):
    """A CT-like volume on the geometry a real SEG/RTSTRUCT declares, with its label map, through preprocessing."""
    from medtrinity_assets.formats.base import ReadItem
    from medtrinity_assets_tests.support.roi import image_rows

    rng = np.random.default_rng(0)
    values = (40.0 + 10.0 * rng.standard_normal(label_map.shape)).astype(np.float32)
    values[label_map > 0] += 20.0
    item = ReadItem(pixels=values, modality="CT", spacing=(1.0, *pixel_spacing), col_toward="L", row_toward="P",
                    slice_toward="S", label_map=label_map, label_names=names)
    layout = DataLayout(tmp_path / prefix)
    return layout, image_rows(item, layout, source="dcm", shard="s00", sample_prefix=prefix)


def test_real_seg_label_map_becomes_liver_rois(tmp_path):
    import pydicom

    from medtrinity_assets.formats.dicom import ground_truth as dicom_gt
    from medtrinity_assets_tests.support.dicom import data_file

    seg = pydicom.dcmread(data_file("liver.dcm"))
    grid = dicom_gt.grid_from_seg(seg)
    lm, names, _ = dicom_gt.seg_to_label_map(seg, grid)
    layout, rows = _rows_from_dicom_gt(tmp_path, lm, names, grid.pixel_spacing, "seg")
    rois, stats = describe_partition(rows, layout, "ground_truth", [], RoiSettings())
    assert rois and all(r["status"] == "ok" and r["label"] == "Liver" and r["kind"] == "anatomy" for r in rois)
    for row in rows:
        k = row["slice_index"]
        mine = [r for r in rois if r["sample_id"] == row["sample_id"]]
        union = np.zeros(lm.shape[1:], bool)
        for r in mine:
            union |= rle.decode(r["mask_rle"])
        truth = lm[k] == 1
        assert (union & ~truth).sum() == 0 and truth.sum() - union.sum() <= 9 * stats.dropped_components
        area_cm2 = sum(r["area_mm2"] for r in mine) / 100
        assert 150 < area_cm2 < 350 and mine[0]["side"] in ("right", "midline")


def test_real_rtstruct_label_map_becomes_rois(tmp_path):
    import pydicom

    from medtrinity_assets.formats.dicom import ground_truth as dicom_gt
    from medtrinity_assets_tests.support.dicom import data_file

    ds = pydicom.dcmread(data_file("rtstruct.dcm"), force=True)
    grid = dicom_gt.grid_from_contours(ds)
    lm, names, _ = dicom_gt.rtstruct_to_label_map(ds, grid)
    layout, rows = _rows_from_dicom_gt(tmp_path, lm, names, grid.pixel_spacing, "rt")
    rois, _ = describe_partition(rows, layout, "ground_truth", [], RoiSettings())
    with_gt = [r for r in rows if (lm[r["slice_index"]] > 0).any()]
    assert with_gt and {r["sample_id"] for r in rois} == {r["sample_id"] for r in with_gt}
    for r in rois:
        k = next(row["slice_index"] for row in rows if row["sample_id"] == r["sample_id"])
        assert r["label"] == "patient" and r["kind"] == "anatomy" and r["status"] == "ok"
        assert r["area_pixels"] <= int((lm[k] == 1).sum())


def test_model_failing_on_one_image_costs_only_that_image(tmp_path):
    from medtrinity_assets.roi.build import PartitionStats, describe_image
    from medtrinity_assets.roi.builtin import Reading
    from medtrinity_assets.roi.expert import Expert
    from medtrinity_assets.roi.registry import ResolvedModel

    class Flaky(Expert):
        def read(self, inp):
            if inp.values.max() > 100:
                raise RuntimeError("NaN in the output")
            return Reading(masks={"spot": inp.values > 50}, confidence={"spot": 0.9})

    model = ResolvedModel(name="flaky", kind="torchscript", version="2", sha256="ab" * 32)
    layout = DataLayout(tmp_path)
    values, _ = _scene()
    good = _row(layout, values, None, {}, sample_id="good")
    bad_values = values.copy()
    bad_values[10, 10] = 500.0
    bad = _row(layout, bad_values, None, {}, sample_id="bad")
    stats = PartitionStats()
    rows_good = describe_image(good, layout, "expert", [(model, Flaky(model))], RoiSettings(), stats)
    rows_bad = describe_image(bad, layout, "expert", [(model, Flaky(model))], RoiSettings(), stats)
    assert rows_good and all(r["status"] == "ok" and r["origin"] == "expert:flaky@2" for r in rows_good)
    assert rows_good[0]["confidence"] == 0.9
    (err,) = rows_bad
    assert err["status"] == "error" and "flaky@2 failed on this image" in err["error"] and "NaN" in err["error"]
    assert stats.errors == 1 and stats.images == 2
