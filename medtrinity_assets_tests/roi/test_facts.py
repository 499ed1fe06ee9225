"""Facts against the phantom's truth, through the real NIfTI reader and preprocessing, in both storage orientations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medtrinity_assets.demo.phantom import make_phantom
from medtrinity_assets.roi import rle
from medtrinity_assets.roi.build import RoiSettings, describe_partition
from medtrinity_assets.roi.facts import ImageContext, describe
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.roi import (
    disk,
    image_rows,
    lesion_rows,
    max_area_slice,
    read_phantom,
)

SIZE_CUTS_MM = (10.0, 20.0)
PHANTOMS = (0, 1, 2, 4, 5, 6)


def _near_cut(d: float) -> bool:
    return any(abs(d - c) < 1.0 for c in SIZE_CUTS_MM)


@pytest.fixture(scope="module")
def described(tmp_path_factory):
    """ROI rows of the lesion slices of a few phantoms, each stored LPS and RAS."""
    tmp = tmp_path_factory.mktemp("phantoms")
    layout = DataLayout(tmp / "out")
    out = {}
    for idx in PHANTOMS:
        ph = make_phantom(3, idx)
        wanted = sorted({max_area_slice(les) for les in ph.lesions})
        for orientation in ("LPS", "RAS"):
            item = read_phantom(ph, tmp, orientation)
            rows = image_rows(item, layout, source="ph", shard="s00", sample_prefix=f"ph{idx}", slices=wanted)
            rois, stats = describe_partition(rows, layout, "ground_truth", [], RoiSettings())
            out[(idx, orientation)] = (ph, rows, rois, stats)
    return out


def _roi_for(rois, les, z):
    sid_suffix = f"-z{z:03d}"
    hits = [r for r in lesion_rows(rois) if r["label"] == les["name"] and r["sample_id"].endswith(sid_suffix)]
    assert len(hits) == 1, f"{les['name']} on slice {z}: {len(hits)} ROI rows"
    return hits[0]


@pytest.mark.parametrize("orientation", ["LPS", "RAS"])
def test_facts_match_phantom_truth(described, orientation):
    checked = 0
    for idx in PHANTOMS:
        ph, rows, rois, _ = described[(idx, orientation)]
        assert all(r["status"] == "ok" for r in rois), [r["error"] for r in rois if r["status"] != "ok"]
        for les in ph.lesions:
            z = max_area_slice(les)
            roi = _roi_for(rois, les, z)
            assert roi["origin"] == "ground_truth" and roi["kind"] == "finding"
            assert roi["side"] == les["side"], (idx, les["name"], roi["side"], les["side"])
            true_area = les["slice_areas_px"][z] / (128 * 128)
            assert abs(roi["area_fraction"] - true_area) / true_area < 0.05
            assert abs(roi["area_mm2"] - les["slice_areas_px"][z] * 1.5 * 1.5) / (les["slice_areas_px"][z] * 2.25) < 0.05
            assert roi["intensity"] == les["intensity"], (idx, les["name"], roi["contrast"], les["contrast_hu"])
            assert abs(roi["contrast"] - les["contrast_hu"]) < 12.0
            if not _near_cut(les["diameter_mm"]):
                assert roi["size_class"] == les["size_class"], (les["name"], roi["equivalent_diameter_mm"], les["diameter_mm"])
            assert roi["region"] == les["organ"]
            assert les["organ"] in json.loads(roi["relations_json"])["inside"]
            assert roi["shape"] == "round" and roi["margin"] == "well_defined"
            checked += 1
    assert checked >= len(PHANTOMS)


def test_texture_against_truth(described):
    agree = total = 0
    for idx in PHANTOMS:
        ph, _, rois, _ = described[(idx, "LPS")]
        for les in ph.lesions:
            total += 1
            agree += _roi_for(rois, les, max_area_slice(les))["texture"] == les["texture"]
    assert agree / total >= 0.8, f"texture agrees on {agree}/{total}"


def test_lps_and_ras_storage_give_identical_rois(described):
    for idx in PHANTOMS:
        a = described[(idx, "LPS")][2]
        b = described[(idx, "RAS")][2]
        key = lambda r: (r["sample_id"], r["label"], r["component"])  # noqa: E731
        assert [key(r) for r in a] == [key(r) for r in b]
        for ra, rb in zip(a, b):
            assert ra["mask_rle"] == rb["mask_rle"] and ra["side"] == rb["side"]


def test_rle_round_trip_and_box(described):
    ph, rows, rois, _ = described[(PHANTOMS[0], "LPS")]
    for r in rois:
        m = rle.decode(r["mask_rle"])
        assert m.shape == (128, 128) and int(m.sum()) == r["area_pixels"]
        ys, xs = np.nonzero(m)
        assert r["bbox"] == [xs.min() / 128, ys.min() / 128, (xs.max() + 1) / 128, (ys.max() + 1) / 128]


def test_anatomy_labels_are_reference_regions_and_lesions_relate(described):
    for idx in PHANTOMS:
        ph, _, rois, _ = described[(idx, "LPS")]
        kinds = {r["label"]: r["kind"] for r in rois}
        assert kinds.get("liver", "anatomy") == "anatomy" and kinds.get("bone") == "anatomy"
        findings = lesion_rows(rois)
        by_sample = {}
        for f in findings:
            by_sample.setdefault(f["sample_id"], []).append(f)
        for group in by_sample.values():
            for f in group:
                rel = json.loads(f["relations_json"])
                assert rel["multiple_lesions"] == (len(group) > 1)
                assert {o["roi_id"] for o in rel["other_lesions"]} == {g["roi_id"] for g in group if g is not f}


def test_side_follows_patient_not_array_direction():
    """Same anatomy stored with columns toward the patient's left ('L') or right ('R'): same side."""
    shape = (120, 160)
    body = disk(shape, 60, 80, 58)
    values = np.where(body, 40.0, -1000.0).astype(np.float32)
    lesion = disk(shape, 60, 120, 8)  # image right half
    values[lesion] = 90.0
    for toward, flip in (("L", False), ("R", True)):
        v = values[:, ::-1] if flip else values
        m = lesion[:, ::-1] if flip else lesion
        b = body[:, ::-1] if flip else body
        ctx = ImageContext(v, "CT", (1.0, 1.0), toward, "P", {"body": b})
        assert describe(m, ctx).side == "left"
    ctx = ImageContext(values, "CT", (1.0, 1.0), "", "", {"body": body})
    assert describe(lesion, ctx).side == "unknown"
    mid = disk(shape, 60, 80, 6)
    assert describe(mid, ImageContext(values, "CT", (1.0, 1.0), "L", "P", {"body": body})).side == "midline"


def test_shape_margin_and_mr_intensity_classes():
    rng = np.random.default_rng(0)
    shape = (200, 200)
    yy, xx = np.mgrid[:200, :200]
    th, r = np.arctan2(yy - 100, xx - 100), np.hypot(xx - 100, yy - 100)
    masks = {
        "round": disk(shape, 100, 100, 20),
        "oval": ((xx - 100) / 30) ** 2 + ((yy - 100) / 15) ** 2 < 1,
        "lobulated": disk(shape, 100, 88, 14) | disk(shape, 100, 112, 14) | disk(shape, 82, 100, 14),
        "irregular": r < (14 + 10 * np.cos(7 * th) ** 8),
    }
    from scipy import ndimage

    for name, m in masks.items():
        sharp = np.where(m, 300.0, 200.0) + rng.normal(0, 5, shape)
        soft = ndimage.gaussian_filter(np.where(m, 300.0, 200.0), 4) + rng.normal(0, 5, shape)
        ctx = ImageContext(sharp.astype(np.float32), "MR", (1.0, 1.0), "L", "P", {})
        d = describe(m, ctx)
        assert d.shape == name, (name, d.circularity, d.solidity)
        assert d.margin == "well_defined" and d.intensity == "hyperintense" and d.contrast_unit == "z"
        assert describe(m, ImageContext(soft.astype(np.float32), "MR", (1.0, 1.0), "L", "P", {})).margin == "ill_defined"
    dark = np.where(masks["round"], 100.0, 200.0) + rng.normal(0, 5, shape)
    assert describe(masks["round"], ImageContext(dark.astype(np.float32), "US", (float("nan"),) * 2, "", "", {})).intensity == "hypoechoic"
    iso = 200.0 + rng.normal(0, 5, shape)
    assert describe(masks["round"], ImageContext(iso.astype(np.float32), "MR", (1.0, 1.0), "", "", {})).intensity == "isointense"


def test_rows_read_back_into_the_same_record(described):
    """A stored ROI row is the record plus its bookkeeping: reading it back and storing it again changes nothing."""
    from dataclasses import fields

    from medtrinity_assets.roi.facts import ROW_ONLY_COLUMNS, RoiFacts
    from medtrinity_assets.tables import ROI_SCHEMA

    _, _, rois, _ = described[(PHANTOMS[0], "LPS")]
    ok = [r for r in rois if r["status"] == "ok"]
    assert ok
    for r in ok:
        rec = RoiFacts.from_row(r)
        assert rec.to_row() == {k: v for k, v in r.items() if k not in ROW_ONLY_COLUMNS}
        assert RoiFacts.from_row(rec.compact()) == rec  # the copy a triplet keeps reads back the same
    finding = next(RoiFacts.from_row(r) for r in ok if r["kind"] == "finding")
    assert finding.relations.n_lesions >= 1 and finding.relations.inside
    assert {f.name for f in fields(RoiFacts)} - {"relations"} == set(ROI_SCHEMA.names) - set(ROW_ONLY_COLUMNS) - {"relations_json"}


def test_long_and_short_axis_in_mm_with_anisotropic_pixels():
    from medtrinity_assets.roi.facts import principal_axes_mm

    yy, xx = np.mgrid[:120, :200]
    spacing = (0.8, 0.5)  # rows, columns (mm)
    ellipse = ((xx - 100) * spacing[1] / 12.0) ** 2 + ((yy - 60) * spacing[0] / 7.0) ** 2 <= 1  # 24 x 14 mm
    long_mm, short_mm = principal_axes_mm(ellipse, spacing)
    assert abs(long_mm - 24.0) / 24.0 < 0.03 and abs(short_mm - 14.0) / 14.0 < 0.03
    values = np.where(ellipse, 100.0, 40.0).astype(np.float32)
    d = describe(ellipse, ImageContext(values, "CT", spacing, "L", "P", {}))
    assert abs(d.long_axis_mm - 24.0) < 1.0 and abs(d.short_axis_mm - 14.0) < 1.0
    unknown = describe(ellipse, ImageContext(values, "CT", (float("nan"),) * 2, "L", "P", {}))
    assert unknown.long_axis_mm is None and unknown.short_axis_mm is None  # no spacing, no millimetres


def test_calibration_decides_hu_attenuation_class_and_words():
    from medtrinity_assets.roi.facts import value_unit_of

    assert value_unit_of("CT", "ct:abdomen(50/400)", True) == "HU"
    assert value_unit_of("CT", "percentile(0.5-99.5)", True) == "grey"  # an 8-bit CT picture holds no HU
    assert value_unit_of("MR", "percentile(0.5-99.5)", True) == "signal" and value_unit_of("US", "rgb", False) == "grey"
    rng = np.random.default_rng(1)
    shape = (160, 160)
    cyst = disk(shape, 80, 80, 14)
    organ = disk(shape, 80, 80, 50)
    values = np.where(cyst, 5.0, np.where(organ, 60.0, -1000.0)) + rng.normal(0, 8, shape)
    refs = {"liver": organ}
    hu = describe(cyst, ImageContext(values.astype(np.float32), "CT", (1.0, 1.0), "L", "P", refs, value_unit="HU"), "liver cyst")
    assert (hu.value_unit, hu.attenuation, hu.intensity, hu.contrast_unit) == ("HU", "fluid", "hypodense", "HU")
    assert abs(hu.mean_value - 5.0) < 3 and abs(hu.surround_value - 60.0) < 3
    grey = describe(cyst, ImageContext(values.astype(np.float32), "CT", (1.0, 1.0), "L", "P", refs, value_unit="grey"), "liver cyst")
    assert (grey.value_unit, grey.attenuation, grey.intensity, grey.contrast_unit) == ("grey", "", "hypodense", "z")
    us = describe(cyst, ImageContext(values.astype(np.float32), "US", (1.0, 1.0), "", "", refs), "cyst")
    assert us.intensity == "hypoechoic" and us.attenuation == "" and us.value_unit == "grey"
    nodule = disk(shape, 80, 80, 5)
    lung = np.where(nodule, 30.0, -850.0) + rng.normal(0, 8, shape)
    n = describe(nodule, ImageContext(lung.astype(np.float32), "CT", (1.0, 1.0), "L", "P", {"lung": organ}), "lung nodule")
    assert n.attenuation == "soft_tissue" and n.surround_value < -800  # the class, whatever the contrast to air
