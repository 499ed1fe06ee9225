"""The team instance for real: PostgreSQL on 127.0.0.1, the committed deploy/team/dagster.yaml, the
daemon dequeuing a backfill across several sources with several runs at once."""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from medtrinity_assets.config import load_config
from medtrinity_assets.deid import shard_name
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.ops import (
    DAGSTER_BIN,
    postgres_available,
    postgres_env,
    postgres_server,
    service_env,
    stop_process_group,
    wait_until,
    write_team_instance_yaml,
    write_tiny_sources,
    write_workspace,
)

pytestmark = pytest.mark.slow

LOCK_ERRORS = re.compile(r"database is locked|deadlock detected|could not obtain lock|LockNotAvailable|"
                         r"could not serialize access|UniqueViolation|duplicate key value", re.IGNORECASE)
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def _backfill(env, workspace: Path, job: str, partitions: list[str]) -> None:
    out = subprocess.run(
        [DAGSTER_BIN, "job", "backfill", "-w", str(workspace), "-j", job, "--partitions", ",".join(partitions), "--noprompt"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, f"backfill of {job} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"


def _wait_for_runs(instance: DagsterInstance, job: str, n: int, timeout: float):
    def done():
        runs = instance.get_runs(RunsFilter(job_name=job))
        return runs if len(runs) >= n and all(r.status in FINISHED for r in runs) else None

    return wait_until(done, timeout, interval=1.0, what=f"{n} finished runs of {job}")


def _max_overlap(records) -> int:
    spans = [(r.start_time, r.end_time) for r in records if r.start_time and r.end_time]
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda p: (p[0], p[1]))
    best = cur = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


@pytest.mark.skipif(not postgres_available() and not os.environ.get("CI"),  # CI installs it: there it must run
                    reason="no PostgreSQL server binaries; run scripts/services.sh as root")
def test_concurrent_backfill_across_sources_on_postgres(tmp_path, monkeypatch):
    cfg_path = write_tiny_sources(tmp_path, n_sources=3, images_per_source=4, shards=2)
    cfg = load_config(cfg_path)
    sources = [s.name for s in cfg.sources]
    shard_keys = [f"{shard_name(i)}|{s}" for s in sources for i in range(cfg.shards)]
    home = tmp_path / "dagster_home"

    with postgres_server() as (_url, port):
        for k, v in postgres_env(port).items():
            monkeypatch.setenv(k, v)
        write_team_instance_yaml(home, max_concurrent_runs=3)
        workspace = write_workspace(home)
        # steps run inside the run process: one Python start per run instead of two (the CPUs are few)
        env = service_env(home, cfg_path, MEDTRINITY_EXECUTOR="in_process", **postgres_env(port))
        instance = DagsterInstance.from_config(str(home))  # creates the schema once, before any concurrent writer
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1  # the gpu pool's default
        instance.add_dynamic_partitions("source", sources)

        daemon_log = tmp_path / "daemon.log"
        daemon_cmd = [str(Path(DAGSTER_BIN).with_name("dagster-daemon")), "run", "-w", str(workspace)]
        t0 = time.time()
        with daemon_log.open("w") as log:
            daemon = subprocess.Popen(daemon_cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _backfill(env, workspace, "source_manifest_job", sources)
            scans = _wait_for_runs(instance, "source_manifest_job", len(sources), timeout=150)
            _backfill(env, workspace, "source_shard_job", shard_keys)
            shard_runs = _wait_for_runs(instance, "source_shard_job", len(shard_keys), timeout=150)
        finally:
            stop_process_group(daemon)
        elapsed = time.time() - t0

        runs = list(scans) + list(shard_runs)
        failed = [(r.job_name, r.tags.get("dagster/partition"), r.run_id) for r in runs if r.status != DagsterRunStatus.SUCCESS]
        assert not failed, f"failed runs: {failed}\n{daemon_log.read_text()[-3000:]}"

        # every partition materialised, in the event log and on disk
        assert set(instance.get_materialized_partitions(AssetKey("source_manifest"))) == set(sources)
        assert set(instance.get_materialized_partitions(AssetKey("images"))) == set(shard_keys)
        layout = DataLayout(cfg.data_root)
        for key in shard_keys:
            shard, source = key.split("|")
            assert layout.table_path("images", {"source": source, "shard": shard}).is_file()

        # runs really overlapped (the queue let up to 3 run at once) ...
        overlap = {job: _max_overlap(instance.get_run_records(RunsFilter(job_name=job)))
                   for job in ("source_manifest_job", "source_shard_job")}
        assert all(v >= 2 for v in overlap.values()), f"runs never ran concurrently: {overlap}"
        # ... and nobody hit a lock: not in the runs' event logs, not in the daemon's log
        messages = [e.message or "" for r in runs for e in instance.all_logs(r.run_id)]
        messages += [str(e.dagster_event.event_specific_data) for r in runs for e in instance.all_logs(r.run_id)
                     if e.dagster_event is not None and e.dagster_event.is_failure]
        hits = [m for m in messages if LOCK_ERRORS.search(m)]
        assert not hits, hits[:5]
        assert not LOCK_ERRORS.search(daemon_log.read_text())
        print(f"postgres backfill: {len(runs)} runs, max overlap {overlap}, {elapsed:.1f}s")
        instance.dispose()
