"""The demo's real (non-phantom) images through ingest and the ROI stage with the repository's models.yaml:
every image names its body region and organs, or says why it cannot."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
REAL_SOURCES = ("pydicom_real", "brain_mr", "skimage_folder")

pytestmark = pytest.mark.slow  # decodes every real demo file (J2K radiographs of ~1900 px)


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    from medtrinity_assets.demo import build as demo
    from medtrinity_assets.ingest import build_images
    from medtrinity_assets.roi.build import RoiSettings, roi_partition
    from medtrinity_assets.roi.registry import load_registry
    from medtrinity_assets.settings import _load
    from medtrinity_assets.storage import DataLayout

    root = tmp_path_factory.mktemp("demo_real")
    for name in REAL_SOURCES:
        demo._rebuild(root, name, getattr(demo, f"_{name}"))
    raw = yaml.safe_load((REPO / "data" / "sources.yaml").read_text())
    raw["sources"] = [s for s in raw["sources"] if s["name"] in REAL_SOURCES]
    for s in raw["sources"]:
        for key in ("path", "labels_csv"):
            if s.get(key):
                s[key] = str(root / Path(s[key]).relative_to("demo"))
    raw.update(models=str(REPO / "data" / "models.yaml"), shards=1, data_root=str(root / "out"),
               knowledge={"corpora": [{"name": "core", "format": "core", "path": str(REPO / "data" / "knowledge")}]})
    raw.pop("eval_hashes", None)
    (root / "sources.yaml").write_text(yaml.safe_dump(raw))
    _load.cache_clear()
    cfg = _load(str(root / "sources.yaml"))
    layout = DataLayout(cfg.data_root)
    models = load_registry(REPO / "data" / "models.yaml", layout.models)
    out = []
    for src in cfg.sources:
        rows = build_images(cfg, src, "s00", layout, salt="test").table.to_pylist()
        result = roi_partition(rows, layout, src.roi, models, RoiSettings())
        out += [(im, f, [r for r in result.rois if r["sample_id"] == im["sample_id"]]) for im, f in zip(rows, result.image_facts)]
    return out


def test_every_real_image_names_its_region_or_says_why_not(facts):
    for im, f, _rois in facts:
        assert f["status"] == "ok", f
        assert f["body_region"] or f["error"], (im["modality"], im["organ"], f)
    regions = Counter((im["modality"], f["body_region"]) for im, f, _ in facts)
    print(dict(regions))


def test_real_images_show_the_expected_organs(facts):
    by = {}
    for im, f, rois in facts:
        by.setdefault((im["source"], im["modality"], im["organ"]), []).append((f, rois))
    ct = by[("pydicom_real", "CT", "")]
    head = [f for f, _ in ct if f["body_region"] == "head"]
    chest = [f for f, _ in ct if f["body_region"] == "chest"]
    assert head and {"brain", "left hemisphere", "right hemisphere"} <= set(head[0]["organs"])
    assert chest and "lung" in chest[0]["organs"]
    (cxr,) = by[("pydicom_real", "CR", "chest")]
    assert cxr[0]["body_region_origin"].startswith("expert:chest_xray@")
    assert {"left lung", "right lung", "heart"} <= set(cxr[0]["organs"])
    assert 0.3 < json.loads(cxr[0]["measurements_json"])["cardiothoracic_ratio"] < 0.6
    (leg,) = by[("pydicom_real", "CR", "extremity")]
    assert leg[0]["body_region"] == "extremity" and leg[0]["body_region_origin"] == "metadata" and not leg[0]["organs"]
    for f, rois in by[("brain_mr", "MR", "brain")]:
        assert f["body_region"] == "head" and "brain" in f["organs"]
        assert all(r["origin"].startswith("expert:brain@") and r["model_sha256"] for r in rois if r["status"] == "ok")
    (us,) = by[("pydicom_real", "US", "")]
    assert us[0]["body_region"] == "" and json.loads(us[0]["measurements_json"])["field_of_view_fraction"] > 0.3
    (fundus,) = by[("skimage_folder", "FUNDUS", "eye")]
    assert json.loads(fundus[0]["measurements_json"])["field_of_view_fraction"] > 0.6
