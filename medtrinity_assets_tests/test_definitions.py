"""The code location loads, validates, keeps heavy libraries out of its import path, and its asset graph
matches the committed snapshot (keys, groups = stages, partitions, dependencies with their partition
mappings, checks, jobs, sensors).

The snapshot is ``medtrinity_assets_tests/data/definitions_snapshot.json``. A change to the graph is a
deliberate act: regenerate it with ``MEDTRINITY_UPDATE_SNAPSHOT=1 pytest medtrinity_assets_tests/test_definitions.py``
and review the diff in the commit.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SNAPSHOT = Path(__file__).parent / "data" / "definitions_snapshot.json"


def _partitions(pdef) -> str | None:
    from dagster import DynamicPartitionsDefinition, MultiPartitionsDefinition, StaticPartitionsDefinition

    if pdef is None:
        return None
    if isinstance(pdef, MultiPartitionsDefinition):
        return " x ".join(_partitions(d.partitions_def) for d in pdef.partitions_defs)
    if isinstance(pdef, DynamicPartitionsDefinition):
        return f"dynamic:{pdef.name}"
    if isinstance(pdef, StaticPartitionsDefinition):
        return "static:shard"  # the only static partitioning; its count comes from the config
    return type(pdef).__name__


def _mapping(mapping) -> str:
    name = type(mapping).__name__.replace("PartitionMapping", "") or "Identity"
    dim = getattr(mapping, "partition_dimension_name", None)
    return f"{name}({dim})" if dim else name


def graph_snapshot(defs) -> dict:
    """What a reviewer wants to see change in a diff: the graph, its checks, jobs and sensors."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        deps = {}
        for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string()):
            parent_pdef = graph.get(parent).partitions_def
            partitioned = node.partitions_def is not None and parent_pdef is not None
            deps[parent.to_user_string()] = _mapping(graph.get_partition_mapping(key, parent)) if partitioned else "-"
        checks = {}
        for check_key in sorted(node.check_keys, key=lambda k: k.name):
            spec = graph.get_check_spec(check_key)
            checks[check_key.name] = {"blocking": spec.blocking, "partitioned": spec.partitions_def is not None}
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": _partitions(node.partitions_def),
            "kind": "materializable" if node.is_materializable else "observable",
            "deps": deps,
            "checks": checks,
            "has_code_version": node.code_version is not None,
        }
    jobs = {}
    for job in sorted(defs.jobs or [], key=lambda j: j.name):
        keys = job.selection.resolve(graph)
        jobs[job.name] = {"partitions": _partitions(job.partitions_def),
                          "assets": sorted(k.to_user_string() for k in keys)}
    sensors = {}
    for s in sorted(defs.sensors or [], key=lambda s: s.name):
        sensors[s.name] = {"jobs": sorted(t.job_name for t in s.targets), "default_status": s.default_status.value}
    return {"assets": assets, "jobs": jobs, "sensors": sensors}


def test_definitions_validate_loadable():
    from dagster import Definitions

    from medtrinity_assets.definitions import defs

    Definitions.validate_loadable(defs)


def test_asset_graph_matches_the_snapshot():
    from medtrinity_assets.definitions import defs

    current = graph_snapshot(defs)
    if os.environ.get("MEDTRINITY_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    for section in ("assets", "jobs", "sensors"):
        assert sorted(current[section]) == sorted(expected[section]), (
            f"{section} added or removed; if intended, regenerate the snapshot (see this module's docstring)")
        for name in expected[section]:
            assert current[section][name] == expected[section][name], (
                f"{section[:-1]} {name!r} changed; if intended, regenerate the snapshot (see this module's docstring)")


def test_every_asset_belongs_to_exactly_one_stage_and_its_module():
    """The stages are the asset groups, one module each: `--stages` selects groups, nothing else."""
    from medtrinity_assets.definitions import STAGE_NAMES, STAGES, defs

    graph = defs.resolve_asset_graph()
    assert STAGE_NAMES == ("ingest", "rois", "knowledge", "triplets", "quality", "exports")
    assert set(graph.all_group_names) == set(STAGE_NAMES)
    for stage in STAGES:
        own = {a.key for a in stage.defs.assets}
        assert own and {graph.get(k).group_name for k in own} == {stage.STAGE}, stage.__name__
        assert own == set(graph.asset_keys_for_group(stage.STAGE)), stage.__name__


@pytest.mark.parametrize("stage", ["ingest", "rois", "knowledge", "triplets", "quality", "exports"])
def test_each_stage_selects_only_its_own_assets(stage):
    from dagster import AssetSelection

    from medtrinity_assets.definitions import STAGES, defs

    graph = defs.resolve_asset_graph()
    module = next(s for s in STAGES if s.STAGE == stage)
    materializable = {a.key for a in module.defs.assets} & set(graph.materializable_asset_keys)
    assert AssetSelection.groups(stage).resolve(graph) == materializable


def test_jobs_run_in_dependency_order():
    """Every asset a job runs depends only on assets of earlier jobs (or of itself, or observed sources)."""
    from medtrinity_assets.definitions import defs
    from medtrinity_assets.jobs import JOBS

    graph = defs.resolve_asset_graph()
    done: set = set(graph.observable_asset_keys)
    covered: set = set()
    for job in JOBS:
        keys = job.selection.resolve(graph)
        for key in keys:
            assert graph.get(key).parent_keys <= done | keys, f"{job.name}: {key.to_user_string()} runs before its inputs"
        done |= keys
        covered |= keys
    assert covered == set(graph.materializable_asset_keys), "every materialisable asset is in one pipeline job"


def test_sensors_load_stopped_unless_automation_is_on():
    code = ("import medtrinity_assets.definitions as d\n"
            "print(sorted({s.default_status.value for s in d.defs.sensors}))\n")
    env = {k: v for k, v in os.environ.items() if k != "MEDTRINITY_AUTOMATION"}
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                        env={**env, "MEDTRINITY_AUTOMATION": "on"})
    assert off.stdout.strip() == "['STOPPED']"
    assert on.stdout.strip() == "['RUNNING']"


def test_definitions_import_without_heavy_libraries():
    code = (
        "import sys, medtrinity_assets.definitions\n"
        "heavy = [m for m in ('torch', 'monai', 'transformers', 'sentence_transformers', 'faiss') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"definitions import pulls in {out.stdout.strip()}"


def test_no_private_dagster_imports_in_the_package():
    package = Path(__file__).resolve().parents[1] / "medtrinity_assets"
    offenders = [str(p.relative_to(package)) for p in package.rglob("*.py") if "dagster._" in p.read_text()]
    assert offenders == []


def test_cli_runs_are_filed_under_the_code_location_the_ui_loads():
    """The runner tags its runs with the repository label of the location in workspace.yaml/pyproject.toml."""
    import tomllib

    import yaml

    from medtrinity_assets.runner import CODE_LOCATION

    repo = Path(__file__).resolve().parents[1]
    workspace = yaml.safe_load((repo / "workspace.yaml").read_text())
    assert [e["python_module"]["location_name"] for e in workspace["load_from"]] == [CODE_LOCATION]
    assert tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["dagster"]["code_location_name"] == CODE_LOCATION


def test_code_versions_follow_exactly_the_settings_that_shape_each_asset(tmp_path):
    """A prompt change moves the triplets' code version only; a rois setting the rois' only; the code
    versions use the fingerprints the targeted-rerun sensors compare."""
    from medtrinity_assets.code_versions import code_versions
    from medtrinity_assets.config import read_config
    from medtrinity_assets_tests.support.ops import write_tiny_sources

    base = write_tiny_sources(tmp_path, n_sources=1)
    text = base.read_text()
    variants = {"base": text, "prompt": text + "generator: {prompt: description_v1, seed: 3}\n",
                "rois": text + "rois: {min_component_pixels: 25}\n", "workers": text + "ingest: {workers: 1}\n"}
    versions = {}
    for name, body in variants.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(body)
        versions[name] = code_versions(read_config(path))
    changed = {name: sorted(k for k in versions["base"] if versions[name][k] != versions["base"][k]) for name in variants}
    assert changed == {"base": [], "prompt": ["triplets"], "rois": ["rois"], "workers": []}


def test_editing_the_prompt_template_moves_only_the_triplets_code_version(tmp_path, monkeypatch):
    import medtrinity_assets.generation.prompt as prompt
    from medtrinity_assets.code_versions import code_versions
    from medtrinity_assets.config import read_config
    from medtrinity_assets_tests.support.ops import write_tiny_sources

    cfg = read_config(write_tiny_sources(tmp_path, n_sources=1))
    before = code_versions(cfg)
    edited = tmp_path / "prompts"
    shutil.copytree(prompt.PROMPTS_DIR, edited)
    template = edited / f"{cfg.generator.prompt}.txt"  # the template the configuration uses
    template.write_text(template.read_text() + "\nBe brief.\n")
    monkeypatch.setattr(prompt, "PROMPTS_DIR", edited)
    prompt.load_template.cache_clear()  # templates are cached per process; a reloaded code location reads anew
    try:
        after = code_versions(cfg)
    finally:
        prompt.load_template.cache_clear()
    assert sorted(k for k in before if before[k] != after[k]) == ["triplets"]
