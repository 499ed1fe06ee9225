"""`medtrinity run --config` on folders it has never seen; `medtrinity catalog`; config errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medtrinity_assets_tests.support.ingest import write_small_sources

BIN = Path(sys.executable).parent / "medtrinity"


def _run(args, env, cwd):
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=900)


@pytest.mark.slow
def test_run_ingest_on_unseen_folders_then_query_catalog(tmp_path):
    cfg = write_small_sources(tmp_path, n_volumes=1)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "MEDTRINITY_CONFIG": str(cfg)}
    out = _run(["run", "--config", str(cfg), "--stages", "ingest", "--quiet"], env, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout[out.stdout.index("{"):])
    assert summary["failed_runs"] == []
    assert summary["images_by_modality"]["CT"] > 0 and summary["images_by_modality"]["DERM"] == 3
    assert summary["quarantine_by_reason"], "bad inputs should be quarantined, not fatal"
    # the runs are recorded in the persistent DAGSTER_HOME, so they show in the UI
    assert any((tmp_path / "home").rglob("*.db"))

    q = _run(["catalog", "--config", str(cfg), "select modality, count(*) as n from images group by 1 order by 1"],
             env, tmp_path)
    assert q.returncode == 0, q.stderr[-2000:]
    rows = [json.loads(line) for line in q.stdout.splitlines()]
    assert {r["modality"] for r in rows} == {"CT", "DERM"}


def test_malformed_config_names_entry_and_field(tmp_path):
    bad = tmp_path / "sources.yaml"
    bad.write_text("data_root: out\nsources:\n  - name: ct\n    format: dcm\n    path: x\n")
    out = _run(["run", "--config", str(bad)], {**os.environ, "DAGSTER_HOME": str(tmp_path / "h")}, tmp_path)
    assert out.returncode == 2
    assert "source 'ct'" in out.stderr and "'format'" in out.stderr
