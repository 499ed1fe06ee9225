"""The same assets on a real distributed engine: Dagster's Dask executor on a local ``distributed``
cluster (2 worker processes on 127.0.0.1) gives row-for-row the outputs of the default executor."""

import math
import os
import shutil

import pyarrow.parquet as pq
import pytest
from dagster import DagsterEventType, DagsterInstance, execute_job, materialize, reconstructable

from medtrinity_assets.config import load_config
from medtrinity_assets.deid import shard_name
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.ops import write_local_instance_yaml, write_tiny_sources
from medtrinity_assets_tests.support.ops_location import build_shard_job, build_shard_job_for_executor_test

pytestmark = pytest.mark.slow


def _partition_tags(key: str) -> dict[str, str]:
    shard, source = key.split("|")
    return {"dagster/partition": key, "dagster/partition/shard": shard, "dagster/partition/source": source}


def _canon(value):
    """NaN-aware form for comparing rows (unknown spacing of a PNG is NaN, and NaN != NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, list):
        return [_canon(v) for v in value]
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in value.items()}
    return value


def _snapshot(layout: DataLayout, keys: list[str]) -> dict:
    """Every images row per partition (sorted) and every blob's name: what the two executors must share."""
    out = {}
    for key in keys:
        shard, source = key.split("|")
        rows = pq.read_table(layout.table_path("images", {"source": source, "shard": shard})).to_pylist()
        out[key] = sorted((_canon(r) for r in rows), key=lambda r: r["sample_id"])
    out["blobs"] = sorted(p.name for p in layout.blobs.rglob("*") if p.is_file())
    return out


def _one_pass(instance, cfg_path, layout, sources, keys, target) -> tuple[dict, list]:
    from medtrinity_assets.assets.ingest import images, source_manifest
    from medtrinity_assets.resources import PipelineResource

    shutil.rmtree(layout.root, ignore_errors=True)
    res = {"pipeline": PipelineResource(config_path=str(cfg_path))}
    for s in sources:  # manifests in process: both passes start from the same scan
        assert materialize([source_manifest, images], selection=[source_manifest], partition_key=s,
                           instance=instance, resources=res).success
    run_ids = []
    for key in keys:
        result = execute_job(reconstructable(target), instance, tags=_partition_tags(key))
        assert result.success, f"{key}: run {result.run_id} failed"
        run_ids.append(result.run_id)
    return _snapshot(layout, keys), run_ids


def _step_pids(instance, run_ids) -> set[int]:
    pids = set()
    for rid in run_ids:
        for rec in instance.get_records_for_run(rid, of_type=DagsterEventType.STEP_SUCCESS).records:
            pids.add(rec.event_log_entry.dagster_event.pid)
    return pids


def test_dask_executor_matches_default_executor(tmp_path, monkeypatch):
    from distributed import Client, LocalCluster

    cfg_path = write_tiny_sources(tmp_path, n_sources=2, images_per_source=5, shards=1)
    cfg = load_config(cfg_path)
    layout = DataLayout(cfg.data_root)
    sources = [s.name for s in cfg.sources]
    keys = [f"{shard_name(i)}|{s}" for s in sources for i in range(cfg.shards)]
    home = tmp_path / "dagster_home"
    write_local_instance_yaml(home)
    monkeypatch.setenv("MEDTRINITY_CONFIG", str(cfg_path))
    monkeypatch.setenv("MEDTRINITY_SHARDS", str(cfg.shards))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("MEDTRINITY_EXECUTOR", raising=False)

    with DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("source", sources)
        baseline, base_runs = _one_pass(instance, cfg_path, layout, sources, keys, build_shard_job)
        assert sum(len(baseline[k]) for k in keys) == 2 * 5

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, protocol="tcp") as cluster, Client(cluster) as client:
            monkeypatch.setenv("MEDTRINITY_EXECUTOR", "dask")
            monkeypatch.setenv("MEDTRINITY_DASK_ADDRESS", cluster.scheduler_address)
            worker_pids = set(client.run(os.getpid).values())
            assert len(worker_pids) == 2
            distributed, dask_runs = _one_pass(instance, cfg_path, layout, sources, keys,
                                               build_shard_job_for_executor_test)
            step_pids = _step_pids(instance, dask_runs)

    # same rows, same content-addressed files
    diffs = sorted({(k, col) for k in keys for a, b in zip(baseline[k], distributed[k]) for col in a if a[col] != b.get(col)})
    assert not diffs, f"columns that differ between executors: {diffs[:10]}"
    assert distributed == baseline
    # the steps really ran in the Dask workers, not in the test process
    assert step_pids and step_pids <= worker_pids, (step_pids, worker_pids)
    assert os.getpid() not in step_pids
    assert not (step_pids & _step_pids(instance, base_runs))
    print(f"dask: {len(dask_runs)} runs, steps on worker pids {sorted(step_pids)} of {sorted(worker_pids)}")
