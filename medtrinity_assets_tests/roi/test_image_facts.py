"""image_facts: one row per image with its body region, organs and measurements, from ground truth or experts."""

from __future__ import annotations

import json
import textwrap

import pytest

from medtrinity_assets.roi.build import RoiSettings, roi_partition
from medtrinity_assets.roi.image_facts import coverage_by_modality
from medtrinity_assets.roi.registry import load_registry
from medtrinity_assets.storage import DataLayout, rows_to_table
from medtrinity_assets.tables import IMAGE_FACTS_SCHEMA
from medtrinity_assets_tests.support.roi import phantom_partition

CT_ONLY = """
models:
  - {name: ct_anatomy, kind: builtin, version: "2.0", applies_to: {modalities: [CT]}}
"""


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("facts")
    layout = DataLayout(tmp / "out")
    ph, rows = phantom_partition(tmp, layout, "gt", "s00", index=3, seed=0, lesion_slices_only=False)
    return tmp, layout, ph, rows


def test_ground_truth_partition_has_one_facts_row_per_image(phantom):
    tmp, layout, ph, rows = phantom
    result = roi_partition(rows, layout, "ground_truth", [], RoiSettings(label_kinds={"lung": "anatomy", "bone": "anatomy"}))
    facts = {f["sample_id"]: f for f in result.image_facts}
    assert len(result.image_facts) == len(rows) == len(facts)
    rows_to_table(result.image_facts, IMAGE_FACTS_SCHEMA)  # the schema holds them
    by_z = {r["slice_index"]: facts[r["sample_id"]] for r in rows}
    lung_z = [z for z in by_z if (ph.label_map[z] == 4).sum() > 0.08 * (ph.volume_hu[z] > -500).sum()]
    liver_z = [z for z in by_z if (ph.label_map[z] == 1).sum() > 200 and z not in lung_z]
    assert lung_z and liver_z
    for z in lung_z:  # lung bases in a series labelled abdomen: lower chest, and it disagrees with the label
        f = by_z[z]
        assert (f["body_region"], f["body_region_detail"], f["body_region_origin"]) == ("chest", "lower chest", "ground_truth")
        assert f["agrees_with_metadata"] is False and "lung" in f["organs"]
    for z in liver_z:
        f = by_z[z]
        assert f["body_region"] == "abdomen" and f["agrees_with_metadata"] is True and "liver" in f["organs"]
        assert f["status"] == "ok" and f["metadata_organ"] == "abdomen" and f["experts"] == ["ground_truth"]


def test_expert_partition_measures_region_and_states_provenance(phantom, tmp_path):
    _tmp, layout, ph, rows = phantom
    (tmp_path / "models.yaml").write_text(textwrap.dedent(CT_ONLY))
    models = load_registry(tmp_path / "models.yaml")
    unlabelled = [{**r, "gt_mask_path": None, "gt_label_names_json": None} for r in rows]
    result = roi_partition(unlabelled, layout, "expert", models, RoiSettings())
    origin = models[0].origin
    assert origin == "expert:ct_anatomy@2.0"
    rois = [r for r in result.rois if r["status"] == "ok"]
    assert rois and all(r["model_sha256"] == models[0].sha256 and r["origin"] == origin for r in rois)
    regions = {f["body_region"] for f in result.image_facts}
    assert regions <= {"abdomen", "chest"} and "abdomen" in regions
    for f in result.image_facts:
        assert f["body_region_origin"] == origin and origin in f["experts"]
        m = json.loads(f["measurements_json"])
        assert 0.0 <= m["lung_fraction_of_body"] <= 1.0 and m["body_region_evidence"]
    cov = coverage_by_modality(result.image_facts)
    assert set(cov) == {"CT"} and cov["CT"]["images"] == len(rows) and cov["CT"]["organ_coverage"] == 1.0


def test_roi_none_and_no_applicable_expert_say_so(phantom, tmp_path):
    _tmp, layout, _ph, rows = phantom
    none = roi_partition(rows[:2], layout, "none", [], RoiSettings())
    assert not none.rois and [f["status"] for f in none.image_facts] == ["no_expert"] * 2
    assert none.image_facts[0]["body_region"] == "abdomen" and none.image_facts[0]["body_region_origin"] == "metadata"
    assert none.image_facts[0]["agrees_with_metadata"] is None
    (tmp_path / "models.yaml").write_text(textwrap.dedent(CT_ONLY))
    mr = [{**r, "modality": "MR", "organ": "", "gt_mask_path": None} for r in rows[:1]]
    res = roi_partition(mr, layout, "expert", load_registry(tmp_path / "models.yaml"), RoiSettings())
    (f,) = res.image_facts
    assert f["status"] == "no_expert" and f["body_region"] == "" and f["organs"] == [] and "no registered expert" in f["error"]
