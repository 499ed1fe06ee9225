"""The instance a command opens: seven processes starting at once on a fresh DAGSTER_HOME all succeed, and
a run whose process was killed mid-way is marked failed by the next command (a live one is left alone)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from medtrinity_assets.dagster_home import fail_orphaned_runs, open_instance
from medtrinity_assets_tests.support.ops import wait_until, write_tiny_sources

pytestmark = pytest.mark.slow  # real processes (each imports dagster), started and killed

BIN = Path(sys.executable).parent / "medtrinity"


def _open_at_the_barrier(home: str, barrier, results) -> None:
    try:
        barrier.wait(timeout=120)
        instance = open_instance(Path(home))
        instance.add_run_tags  # noqa: B018 - the instance is usable
        results.put(("ok", len(instance.get_runs())))
    except Exception as exc:  # the failure this test exists for: "table ... already exists"
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def test_seven_processes_open_a_fresh_home_at_the_same_instant(tmp_path):
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(7), ctx.Queue()
    procs = [ctx.Process(target=_open_at_the_barrier, args=(str(tmp_path / "home"), barrier, results)) for _ in range(7)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    outcomes = [results.get(timeout=5) for _ in procs]
    assert outcomes == [("ok", 0)] * 7, outcomes
    assert (tmp_path / "home" / "dagster.yaml").read_text().startswith("telemetry:")


def test_seven_simultaneous_medtrinity_runs_on_a_fresh_home_all_succeed(tmp_path):
    cfg = write_tiny_sources(tmp_path, n_sources=2, images_per_source=2, shards=2)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "MEDTRINITY_CONFIG": str(cfg)}
    procs = [subprocess.Popen([str(BIN), "run", "--config", str(cfg), "--stages", "ingest", "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
             for _ in range(7)]
    outs = [p.communicate(timeout=1800) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0] * 7, [err[-1500:] for (_, err), c in zip(outs, codes) if c]
    for out, _ in outs:
        assert json.loads(out[out.index("{"):])["failed_runs"] == []
    runs = DagsterInstance.from_config(str(tmp_path / "home")).get_runs()
    # per invocation: one batched source_manifest run for both sources + one run per source x shard
    assert len(runs) == 7 * (1 + 2 * 2) and {r.status for r in runs} == {DagsterRunStatus.SUCCESS}


# A run that blocks until it is killed: an asset that sleeps, launched as `medtrinity run` launches its jobs
# (with the process tags) or as a UI run worker does (without them).
SLEEPER = textwrap.dedent("""
    import sys, time
    from dagster import Definitions, asset, define_asset_job
    from medtrinity_assets.dagster_home import open_instance, process_tags

    @asset
    def sleeper():
        time.sleep(600)

    job = Definitions(assets=[sleeper], jobs=[define_asset_job("sleeper_job")]).resolve_job_def("sleeper_job")
    tags = process_tags() if sys.argv[1] == "cli" else {}
    job.execute_in_process(instance=open_instance(), tags=tags, raise_on_error=False)
""")


def _start_sleeper(tmp_path: Path, kind: str) -> subprocess.Popen:
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, str(script), kind], env=env, start_new_session=True)


def _started_run(instance: DagsterInstance, known: set[str]):
    def started():
        runs = [r for r in instance.get_runs() if r.run_id not in known and r.status == DagsterRunStatus.STARTED]
        return runs[0] if runs else None

    return wait_until(started, 300, interval=0.5, what="the sleeper run to start")


@pytest.mark.parametrize("kind", ["cli", "ui_worker"])
def test_a_killed_run_is_marked_failed_by_the_next_command_and_a_live_one_is_not(tmp_path, kind):
    instance = open_instance(tmp_path / "home")
    live = _start_sleeper(tmp_path, kind)
    victim = None
    try:
        live_run = _started_run(instance, set())
        victim = _start_sleeper(tmp_path, kind)
        victim_run = _started_run(instance, {live_run.run_id})
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        time.sleep(0.5)

        assert fail_orphaned_runs(instance) == [victim_run.run_id]
        assert instance.get_run_by_id(victim_run.run_id).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live_run.run_id).status == DagsterRunStatus.STARTED  # still running: untouched
        failure = instance.all_logs(victim_run.run_id)[-1]
        assert "killed mid-way" in (failure.dagster_event.message or "")
        assert fail_orphaned_runs(instance) == []  # idempotent
    finally:
        for proc in (live, victim):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
