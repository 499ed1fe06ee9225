"""The ``medtrinity`` command never surprises: a bad configuration, argument or query stops before any
work with exit code 2 and one line naming the file, the entry and the field; good runs go through
Dagster into the persistent DAGSTER_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from medtrinity_assets import cli
from medtrinity_assets_tests.support.ingest import write_small_sources

BIN = Path(sys.executable).parent / "medtrinity"
REPO = Path(__file__).resolve().parents[1]


def _run(args, env, cwd):
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=900)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """The CLI's environment changes (config, DAGSTER_HOME) stay inside the test."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDTRINITY_CONFIG", str(tmp_path / "sources.yaml"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        rc = cli.main(list(argv))
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- configuration: checked completely before any work ---------------------------------------------

SOURCE = "sources:\n  - {name: ct, format: nifti, path: images}\n"


@pytest.mark.parametrize("text, fragments", [
    ("generator: {backend: openia}\n" + SOURCE,
     ["field 'generator.backend': 'openia' is not one of grounded, openai, transformers"]),
    ("generator: {backend: openai, model: m}\n" + SOURCE, ["field 'generator'", "needs base_url"]),
    ("knowledge: {top_k: zero}\n" + SOURCE, ["field 'knowledge.top_k'"]),
    ("knowledge: {corpora: [{name: pubmed, format: medrag, path: no/such.jsonl}]}\n" + SOURCE,
     ["corpus 'pubmed' field 'path'", "does not exist"]),
    ("models: models.yaml\n" + SOURCE, ["models.yaml: model 'seg' field 'kind'", "'onnx'"]),
    ("sources:\n  - {name: ct, format: nifti, path: images, schedule: '0 3 * * 8'}\n",
     ["source 'ct' field 'schedule'", "day of week '8'"]),
    ("source:\n  - {name: ct, format: nifti, path: images}\n", ["unknown top-level key 'source' (did you mean 'sources'?)"]),
    ("sources: []\n", ["field 'sources': empty"]),
    ("data_root: out\n", ["field 'sources': missing"]),
    ("data_root: notes.txt\n" + SOURCE, ["field 'data_root'", "is a file"]),
    ("data_root: images/out\n" + SOURCE, ["field 'data_root'", "inside the folder of source 'ct'"]),
    ("sources:\n  - {name: ct, format: nifti, path: scans}\n", ["source 'ct' field 'path'", "does not exist"]),
    ("sources:\n  - {name: ct, format: nifti, path: images, options: {max_voxel: 9}}\n",
     ["source 'ct' field 'options'", "did you mean 'max_voxels'"]),
    ("sources:\n  - {name: ct, format: nifti, path: images, labels: masks}\n", ["source 'ct' field 'labels'"]),
    ("sources:\n  - {name: ct, format: dcm, path: images}\n", ["source 'ct' field 'format': 'dcm' is not one of dicom"]),
])
def test_bad_configuration_stops_before_any_work(isolated, capsys, text, fragments):
    (isolated / "images").mkdir()
    (isolated / "notes.txt").write_text("not a folder")
    (isolated / "models.yaml").write_text("models:\n  - {name: seg, kind: onnx, path: seg.onnx}\n")
    config = isolated / "sources.yaml"
    config.write_text(text)
    rc, out, err = _main(capsys, "run", "--config", str(config))
    assert rc == 2 and out == ""
    line = _one_line_error(err)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert not (isolated / "home").exists()  # Dagster was never started
    assert not (isolated / "out").exists()


def test_unknown_sources_and_stages_are_refused(isolated, capsys):
    cfg = write_small_sources(isolated, n_volumes=1)
    rc, _, err = _main(capsys, "run", "--config", str(cfg), "--sources", "ct_phantom", "photo")
    assert rc == 2 and "unknown source 'photo' (did you mean 'photos'?); known: ct_phantom, photos" in _one_line_error(err)
    rc, _, err = _main(capsys, "run", "--config", str(cfg), "--stages", "ingst")
    line = _one_line_error(err)
    assert rc == 2 and "unknown stage 'ingst' (did you mean 'ingest'?)" in line
    known = line.split("known: ")[1].split(", ")
    assert {"ingest", "rois", "knowledge", "exports"} <= set(known)
    rc, _, err = _main(capsys, "run", "--config", str(cfg), "--stages")
    assert rc == 2 and "--stages needs at least one name" in _one_line_error(err)
    assert not (isolated / "out" / "tables").exists()  # nothing ran


def test_stage_names_are_the_code_locations(isolated):
    from medtrinity_assets import definitions

    names = cli.stage_names()
    assert names == tuple(getattr(definitions, "STAGE_NAMES", names)) and "ingest" in names


# --- the catalog -----------------------------------------------------------------------------------


def test_catalog_errors_are_one_line(isolated, capsys):
    # from a folder without data/sources.yaml (the default config)
    os.environ.pop("MEDTRINITY_CONFIG")
    rc, out, err = _main(capsys, "catalog", "select 1")
    assert rc == 2 and out == ""
    assert "data/sources.yaml: configuration file not found (set --config or $MEDTRINITY_CONFIG)" in _one_line_error(err)

    (isolated / "images").mkdir()
    config = isolated / "sources.yaml"
    config.write_text(SOURCE)
    rc, _, err = _main(capsys, "catalog", "--config", str(config), "select 1")
    assert rc == 2 and "data_root" in _one_line_error(err) and "medtrinity run" in err
    assert not (isolated / "out").exists()  # asking did not create the output folder

    (isolated / "out").mkdir()
    rc, out, _ = _main(capsys, "catalog", "--config", str(config), "select count(*) as n from images")
    assert rc == 0 and json.loads(out) == {"n": 0}
    for sql in ("select * from triplet", "selec 1", "drop view images"):
        rc, out, err = _main(capsys, "catalog", "--config", str(config), sql)
        assert rc == 2 and out == "" and "query failed" in _one_line_error(err)


# --- the command itself ----------------------------------------------------------------------------


def test_version_and_examples_in_help(capsys):
    rc, out, _ = _main(capsys, "--version")
    from importlib.metadata import version

    assert rc == 0 and out.strip() == f"medtrinity {version('medtrinity-assets')}"
    rc, out, _ = _main(capsys, "--help")
    assert rc == 0 and "examples:" in out and "medtrinity run --config my_sources.yaml --sources" in out
    assert "exit codes:" in out
    for command in ("run", "catalog", "demo", "ui"):
        rc, out, _ = _main(capsys, command, "--help")
        assert rc == 0 and "example" in out, command


def test_argument_errors_exit_2(capsys):
    rc, _, err = _main(capsys, "runn")
    assert rc == 2 and "invalid choice: 'runn'" in err
    rc, _, err = _main(capsys, "catalog")
    assert rc == 2 and "sql" in err


def test_one_code_location_name():
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]
    assert entry["python_module"]["location_name"] == project["code_location_name"] == "medtrinity"
    assert entry["python_module"]["module_name"] == project["module_name"]


def test_malformed_config_names_entry_and_field(tmp_path):
    """Through the installed command, as a user runs it."""
    bad = tmp_path / "sources.yaml"
    bad.write_text("data_root: out\nsources:\n  - name: ct\n    format: dcm\n    path: x\n")
    out = _run(["run", "--config", str(bad)], {**os.environ, "DAGSTER_HOME": str(tmp_path / "h")}, tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == (f"error: {bad}: source 'ct' field 'format': 'dcm' is not one of dicom, nifti, msd, "
                                  "image_folder, coco, captions")


# --- runs ------------------------------------------------------------------------------------------


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


@pytest.mark.slow
def test_config_without_knowledge_section_gets_retrieved_passages_from_the_core_corpus(tmp_path):
    cfg = write_small_sources(tmp_path, n_volumes=1)
    assert "knowledge" not in yaml.safe_load(cfg.read_text())
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "MEDTRINITY_CONFIG": str(cfg)}
    out = _run(["run", "--config", str(cfg), "--sources", "ct_phantom", "--stages", "ingest", "knowledge", "--quiet"],
               env, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout[out.stdout.index("{"):])["failed_runs"] == []
    q = _run(["catalog", "--config", str(cfg), "select count(*) as n, count(distinct sample_id) as samples from retrieved_passages"],
             env, tmp_path)
    (row,) = [json.loads(line) for line in q.stdout.splitlines()]
    images = _run(["catalog", "--config", str(cfg), "select count(*) as n from images where source = 'ct_phantom'"],
                  env, tmp_path)
    assert row["samples"] == json.loads(images.stdout)["n"] > 0  # every image got its passages
    corpora = _run(["catalog", "--config", str(cfg), "select distinct corpus from passages"], env, tmp_path)
    assert [json.loads(line)["corpus"] for line in corpora.stdout.splitlines()] == ["core"]
