"""The code location loads, validates, and keeps heavy libraries out of its import path."""

import subprocess
import sys

from medtrinity_assets.runner import plan_steps, stage_of


def test_definitions_validate_loadable():
    from dagster import Definitions

    from medtrinity_assets.definitions import defs

    Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"source_manifest", "images"} <= keys


def test_definitions_import_without_heavy_libraries():
    code = (
        "import sys, medtrinity_assets.definitions\n"
        "heavy = [m for m in ('torch', 'monai', 'transformers', 'sentence_transformers', 'faiss') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"definitions import pulls in {out.stdout.strip()}"


def test_runner_batches_per_shard_work_after_global_steps():
    graph = {
        "source_manifest": ("source", set()),
        "images": ("source_shard", {"source_manifest"}),
        "expert_models": ("none", set()),
        "rois": ("source_shard", {"images", "expert_models"}),
        "knowledge_corpus": ("corpus", set()),
        "knowledge_index": ("corpus", {"knowledge_corpus"}),
        "context": ("source_shard", {"images", "rois", "knowledge_index"}),
        "triplets": ("source_shard", {"context", "rois"}),
        "exports": ("shard", {"triplets"}),
        "dataset_card": ("none", {"exports"}),
    }
    steps = plan_steps(graph)
    assert ("source_shard", ["images", "rois", "context", "triplets"]) in steps
    done = set()
    for _, group in steps:
        for k in group:
            assert graph[k][1] <= done | set(group)
        done |= set(group)
    assert done == set(graph)


def test_every_asset_belongs_to_one_cli_stage():
    from medtrinity_assets.definitions import defs

    names = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert stage_of("images") == "ingest" and stage_of("rois") == "rois" and stage_of("context") == "knowledge"
    assert stage_of("triplets") == "triplets"
    assert {stage_of(n) for n in names if n.startswith("export_")} == {"exports"}
    assert stage_of("dataset_card") == "exports"
