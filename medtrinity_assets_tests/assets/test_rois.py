"""Dagster layer of the ROI stage on a temp instance: rois per partition, expert_models' data version,
and a model-version bump that makes only the partitions that used the model stale (and the sensor
requests only those)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, MultiPartitionKey, SensorResult, SkipReason, build_sensor_context, materialize

from medtrinity_assets.input_versions import INPUT_VERSIONS_KEY, parse_recorded
from medtrinity_assets.resources import PipelineResource
from medtrinity_assets.settings import _load
from medtrinity_assets.storage import DataLayout, read_table
from medtrinity_assets_tests.support.roi import phantom_partition, tiny_torchscript, write_config

MODELS = """
models:
  - name: ct_anatomy
    kind: builtin
    version: "1.0"
    applies_to: {{modalities: [CT]}}
  - name: dense_seg
    kind: torchscript
    path: dense.ts
    version: "{version}"
    applies_to: {{modalities: [CT], organs: [abdomen]}}
    labels: {{1: dense focus}}
    preprocess: {{window: [100, 400]}}
  - name: missing_seg
    kind: torchscript
    path: nowhere/missing.ts
    version: "1"
    applies_to: {{modalities: [CT], organs: [pelvis]}}
"""

PARTS = [("gt_src", "s00"), ("exp_src", "s00"), ("exp_src", "s01"), ("brain_ct", "s00"), ("pelvis_ct", "s00")]


pytestmark = pytest.mark.slow  # the tests build on one module-wide materialisation (seconds of CPU)

def _key(source: str, shard: str) -> MultiPartitionKey:
    return MultiPartitionKey({"source": source, "shard": shard})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("roi_assets")
    tiny_torchscript(root / "dense.ts")
    src = lambda name, roi, organ: {"name": name, "format": "nifti", "path": "in", "modality": "CT", "organ": organ, "roi": roi}  # noqa: E731
    cfg_path = write_config(root, [src("gt_src", "ground_truth", "abdomen"), src("exp_src", "expert", "abdomen"),
                                   src("brain_ct", "expert", "brain"), src("pelvis_ct", "expert", "pelvis")],
                            MODELS.format(version="1"))
    (root / "in").mkdir()
    layout = DataLayout(root / "out")
    for i, (source, shard) in enumerate(PARTS):
        organ = {"brain_ct": "brain", "pelvis_ct": "pelvis"}.get(source, "abdomen")
        phantom_partition(root / "in", layout, source, shard, index=i, organ=organ, with_labels=(source == "gt_src"))
    (root / "dagster_home").mkdir()
    instance = DagsterInstance.local_temp(tempdir=str(root / "dagster_home"))
    instance.add_dynamic_partitions("source", sorted({s for s, _ in PARTS}))
    yield root, cfg_path, layout, instance
    instance.dispose()


def _materialize(assets, cfg_path: Path, instance, partition=None):
    _load.cache_clear()
    return materialize(assets, partition_key=partition, instance=instance,
                       resources={"pipeline": PipelineResource(config_path=str(cfg_path))})


def _latest_metadata(instance, key: str, partition: str | None = None):
    from dagster import AssetRecordsFilter

    flt = AssetRecordsFilter(asset_key=AssetKey(key), asset_partitions=[partition] if partition else None)
    rec = instance.fetch_materializations(flt, limit=1).records[0]
    return rec.asset_materialization.metadata


def _data_version(instance) -> str | None:
    rec = instance.get_latest_data_version_record(AssetKey("expert_models"))
    return rec.asset_materialization.tags.get("dagster/data_version")


def _sensor_partitions(instance) -> list[str] | str:
    from medtrinity_assets.assets.rois import model_update_sensor
    from medtrinity_assets.definitions import defs

    result = model_update_sensor(build_sensor_context(instance=instance, definitions=defs))
    if isinstance(result, SkipReason):
        return "skip"
    assert isinstance(result, SensorResult)
    # the rerun covers rois and what is built from it per sample, never the images
    assert all(r.asset_selection == [AssetKey("rois"), AssetKey("retrieved_passages"), AssetKey("triplets")]
               for r in result.run_requests), result.run_requests[0].asset_selection
    return sorted(str(r.partition_key) for r in result.run_requests)


def test_rois_partitions_record_models_and_rows(world, monkeypatch):
    from medtrinity_assets.assets.rois import expert_models, rois

    root, cfg_path, layout, instance = world
    monkeypatch.setenv("MEDTRINITY_CONFIG", str(cfg_path))
    res = _materialize([expert_models], cfg_path, instance)
    assert res.success
    meta = _latest_metadata(instance, "expert_models")
    assert meta["errors"].value == 1  # missing_seg: reported, not fatal
    table = meta["models"].value.splitlines()
    assert "| trusted | scope |" in table[0] and len(table) == 2 + 3 and all(row.count("|") == 8 for row in table)
    for source, shard in PARTS:
        assert _materialize([rois], cfg_path, instance, _key(source, shard)).success

    gt = read_table(layout.table_path("rois", {"source": "gt_src", "shard": "s00"})).to_pylist()
    assert gt and {r["origin"] for r in gt} == {"ground_truth"} and all(r["status"] == "ok" for r in gt)
    exp = read_table(layout.table_path("rois", {"source": "exp_src", "shard": "s00"})).to_pylist()
    origins = {r["origin"] for r in exp}
    assert "expert:dense_seg@1" in origins and "expert:ct_anatomy@1.0" in origins
    assert {r["label"] for r in exp if r["origin"] == "expert:ct_anatomy@1.0"} >= {"body", "bone"}
    facts = read_table(layout.table_path("image_facts", {"source": "exp_src", "shard": "s00"})).to_pylist()
    images = read_table(layout.table_path("images", {"source": "exp_src", "shard": "s00"})).to_pylist()
    assert sorted(f["sample_id"] for f in facts) == sorted(r["sample_id"] for r in images)
    assert all(f["body_region"] in ("abdomen", "chest") and f["body_region_origin"] == "expert:ct_anatomy@1.0" for f in facts)
    pelvis = read_table(layout.table_path("rois", {"source": "pelvis_ct", "shard": "s00"})).to_pylist()
    errors = [r for r in pelvis if r["status"] == "error"]
    assert errors and all("missing_seg" in r["error"] and "not found" in r["error"] for r in errors)
    assert any(r["status"] == "ok" for r in pelvis)  # anatomy still ran: one broken model loses nothing else

    recorded = {p: parse_recorded(_latest_metadata(instance, "rois", str(_key(*p)))[INPUT_VERSIONS_KEY]) for p in PARTS}
    assert not any(k.startswith("model:") for k in recorded[("gt_src", "s00")])
    assert set(k for k in recorded[("exp_src", "s00")] if k.startswith("model:")) == {"model:ct_anatomy", "model:dense_seg"}
    assert set(k for k in recorded[("brain_ct", "s00")] if k.startswith("model:")) == {"model:ct_anatomy"}
    md = _latest_metadata(instance, "rois", str(_key("exp_src", "s00")))
    assert Path(md["outlines"].value).is_file() and "dense focus" in md["counts"].value
    assert _sensor_partitions(instance) == "skip"  # everything up to date


def test_model_version_bump_reruns_only_partitions_that_used_it(world, monkeypatch):
    from medtrinity_assets.assets.rois import expert_models, model_input_versions
    from medtrinity_assets.sensors import outdated_partitions

    root, cfg_path, layout, instance = world
    monkeypatch.setenv("MEDTRINITY_CONFIG", str(cfg_path))
    before = _data_version(instance)
    (root / "models.yaml").write_text(MODELS.format(version="2"))
    _load.cache_clear()
    assert _materialize([expert_models], cfg_path, instance).success
    after = _data_version(instance)
    assert before and after and before != after

    current = model_input_versions(_load(str(cfg_path)), layout)
    stale = outdated_partitions(instance, AssetKey("rois"), current)
    assert sorted(stale) == sorted(str(_key("exp_src", s)) for s in ("s00", "s01"))
    assert all(names == ["model:dense_seg"] for names in stale.values())
    assert _sensor_partitions(instance) == sorted(str(_key("exp_src", s)) for s in ("s00", "s01"))

    # new weights under the same version are an update too (the digest is recorded)
    (root / "models.yaml").write_text(MODELS.format(version="1"))
    tiny_torchscript(root / "dense.ts", bias=1.0)
    current = model_input_versions(_load.__wrapped__(str(cfg_path)), layout)
    assert sorted(outdated_partitions(instance, AssetKey("rois"), current)) == sorted(str(_key("exp_src", s)) for s in ("s00", "s01"))
