"""The ingest assets on a temp Dagster instance, over real NIfTI volumes and PNGs with bad inputs."""

import json

import pyarrow.parquet as pq
from dagster import AssetKey, DagsterInstance, materialize

from medtrinity_assets.assets.ingest import images, source_manifest
from medtrinity_assets.catalog import query
from medtrinity_assets.config import load_config
from medtrinity_assets.partitions import SHARDS, source_shard_key
from medtrinity_assets.resources import PipelineResource
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.ingest import write_small_sources


def _materialise_source(instance, res, name):
    instance.add_dynamic_partitions("source", [name])
    r = materialize([source_manifest, images], selection=[source_manifest], partition_key=name,
                    instance=instance, resources={"pipeline": res})
    assert r.success
    for shard in SHARDS:
        r = materialize([source_manifest, images], selection=[images], partition_key=source_shard_key(name, shard),
                        instance=instance, resources={"pipeline": res})
        assert r.success


def test_manifest_and_images_for_every_shard(tmp_path):
    cfg_path = write_small_sources(tmp_path)
    cfg = load_config(cfg_path)
    layout = DataLayout(cfg.data_root)
    res = PipelineResource(config_path=str(cfg_path))
    with DagsterInstance.ephemeral() as instance:
        _materialise_source(instance, res, "ct_phantom")
        _materialise_source(instance, res, "photos")
        ev = instance.get_latest_materialization_event(AssetKey("source_manifest"))
        assert ev is not None

    manifest = pq.read_table(layout.table_path("manifest", {"source": "ct_phantom"})).to_pylist()
    assert len(manifest) == 2 and all(r["kind"] == "nifti" for r in manifest)
    # one patient never spans shards, and every manifest item lands in exactly the shard it names
    rows = query(layout, "select * from images where source = 'ct_phantom'").to_pylist()
    assert rows, "no images were produced"
    for r in rows:
        assert r["shard"] == next(m["shard"] for m in manifest if m["item_key"] == r["item_key"])
        assert max(r["width"], r["height"]) == 48  # longest side brought down to max_side (never up)
        assert r["modality"] == "CT" and r["axis"] == "axial"
        assert (layout.root / r["image_path"]).is_file()
    # every slice holding ground truth is kept, and it carries the label map
    assert any(r["gt_mask_path"] for r in rows)
    names = json.loads(next(r["gt_label_names_json"] for r in rows if r["gt_mask_path"]))
    assert "liver" in names.values()

    by_mod = {d["modality"]: d["n"] for d in query(layout, "select modality, count(*) n from images group by 1").to_pylist()}
    assert by_mod["DERM"] == 3 and by_mod["CT"] == len(rows)

    quarantine = query(layout, "select source, rel_path, error_class, reason from quarantine").to_pylist()
    # tables hold file keys; the operator finds the paths in the private table
    from medtrinity_assets.deid.paths import lookup

    assert all(q["rel_path"].startswith("fil-") for q in quarantine)
    paths = set(lookup(layout.root, [q["rel_path"] for q in quarantine]).values())
    assert "broken.nii.gz" in paths
    assert "not_an_image.png" in paths and "missing.png" in paths
    assert any("outside" in q["reason"] or "outside" in q["error_class"] for q in quarantine)
    assert all(q["reason"] for q in quarantine)


def test_images_rerun_is_deterministic(tmp_path):
    cfg_path = write_small_sources(tmp_path, n_volumes=1)
    cfg = load_config(cfg_path)
    layout = DataLayout(cfg.data_root)
    res = PipelineResource(config_path=str(cfg_path))
    with DagsterInstance.ephemeral() as instance:
        _materialise_source(instance, res, "ct_phantom")
        first = {s: layout.table_path("images", {"source": "ct_phantom", "shard": s}).read_bytes() for s in SHARDS}
        _materialise_source(instance, res, "ct_phantom")
        second = {s: layout.table_path("images", {"source": "ct_phantom", "shard": s}).read_bytes() for s in SHARDS}
    assert sum(pq.read_table(layout.table_path("images", {"source": "ct_phantom", "shard": s})).num_rows for s in SHARDS) > 0
    for s in SHARDS:
        assert first[s] == second[s]
