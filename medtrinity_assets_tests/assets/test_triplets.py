"""The ``triplets`` asset on a temp Dagster instance, over upstream tables written in their real schemas."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, MultiPartitionKey, materialize

from medtrinity_assets.assets.triplets import triplets
from medtrinity_assets.resources import GeneratorResource, PipelineResource
from medtrinity_assets.storage import DataLayout, rows_to_table, write_table
from medtrinity_assets.tables import (
    IMAGE_FACTS_SCHEMA,
    IMAGE_SCHEMA,
    PASSAGE_SCHEMA,
    RETRIEVED_PASSAGES_SCHEMA,
    ROI_SCHEMA,
    TRIPLET_SCHEMA,
)
from medtrinity_assets_tests.support.generation import LoopbackChatServer, Reply, echo_answer, tiny_png, user_text

PART = {"source": "phantom_ct", "shard": "s00"}
KEY = MultiPartitionKey({"source": "phantom_ct", "shard": "s00"})


def write_config(tmp: Path, name: str, generator: dict) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        f"data_root: {tmp / 'out'}\nshards: 4\nsalt: test\n"
        "sources:\n  - {name: phantom_ct, format: nifti, path: nowhere, modality: CT, organ: abdomen, licence: CC0-1.0}\n"
        f"generator: {json.dumps(generator)}\n"
    )
    return path


def write_upstream(layout: DataLayout) -> None:
    images, rois, context = [], [], []
    for i, side in enumerate(["left", "right", "left"]):
        sid = f"sample{i}"
        rel, sha = layout.put_blob(tiny_png(64, 64, 10 * i), ".png")
        images.append({"sample_id": sid, "source": "phantom_ct", "volume_ref": "vol1", "slice_index": 10 + i, "axis": "axial",
                       "modality": "CT", "organ": "abdomen", "disease": "", "labels": ["liver_tumour"], "image_path": rel,
                       "image_sha256": sha, "width": 64, "height": 64, "window": "ct:abdomen(40/400)", "licence": "CC0-1.0",
                       "split": "train", "shard": "s00", "subject_key": "k", "rel_path": "secret/path.nii.gz"})
        rois.append({"sample_id": sid, "source": "phantom_ct", "shard": "s00", "roi_id": f"{sid}-r1", "label": "liver tumour",
                     "kind": "finding", "origin": "ground_truth", "confidence": 1.0, "bbox": [0.2, 0.3, 0.3, 0.4],
                     "area_fraction": 0.01, "side": side, "vertical_position": "upper", "ap_position": "unknown",
                     "region": "liver", "size_class": "medium", "intensity": "hypodense", "contrast": -38.5, "contrast_unit": "HU",
                     "texture": "heterogeneous", "shape": "round", "margin": "well_defined", "status": "ok",
                     "relations_json": json.dumps({"inside": ["liver"], "overlaps": [], "adjacent": ["kidney"], "nearest_organ": "liver",
                                                   "distance_to_organ_edge_mm": 4.0, "distance_unit": "mm"})})
        rois.append({"sample_id": sid, "source": "phantom_ct", "shard": "s00", "roi_id": f"{sid}-a1", "label": "liver",
                     "kind": "anatomy", "origin": "expert:anatomy@1", "status": "ok", "area_fraction": 0.1})
        rois.append({"sample_id": sid, "source": "phantom_ct", "shard": "s00", "roi_id": "", "label": "lesion",
                     "status": "error", "error": "model failed on this image"})
        context.append({"sample_id": sid, "source": "phantom_ct", "shard": "s00", "query": "CT liver tumour",
                        "passage_ids": ["core:liver_tumour#0"], "corpora": ["core"], "titles": ["Liver tumour"], "scores": [0.71],
                        "encoder": "enc"})
    write_table(layout.table_path("images", PART), rows_to_table(images, IMAGE_SCHEMA))
    write_table(layout.table_path("rois", PART), rows_to_table(rois, ROI_SCHEMA))
    write_table(layout.table_path("retrieved_passages", PART), rows_to_table(context, RETRIEVED_PASSAGES_SCHEMA))
    # what the ROI stage saw on each slice: sample1 shows the lung bases of this 'abdomen' series
    facts = [{"sample_id": "sample0", "status": "ok", "body_region": "abdomen", "body_region_origin": "expert:ct_anatomy@1",
              "organs": ["liver"], "agrees_with_metadata": True},
             {"sample_id": "sample1", "status": "ok", "body_region": "chest", "body_region_detail": "lower chest",
              "body_region_origin": "expert:ct_anatomy@1", "organs": ["lung"], "agrees_with_metadata": False}]
    write_table(layout.table_path("image_facts", PART), rows_to_table(facts, IMAGE_FACTS_SCHEMA))
    passages = [{"corpus": "core", "passage_id": "core:liver_tumour#0", "doc_id": "liver_tumour", "chunk_index": 0,
                 "title": "Liver tumour", "text": "Liver tumour: Primary and secondary liver tumours are common. On portal venous CT most "
                 "metastases are hypodense with a heterogeneous centre. Some lesions are hyperdense in the arterial phase.", "n_tokens": 30}]
    write_table(layout.table_path("passages", "core"), rows_to_table(passages, PASSAGE_SCHEMA))


def resources_for(config: Path, **generator_fields) -> dict:
    pipeline = PipelineResource(config_path=str(config))
    return {"pipeline": pipeline, "generator": GeneratorResource(pipeline=pipeline, **generator_fields)}


def run(config: Path, instance: DagsterInstance, **generator_fields):
    result = materialize([triplets], partition_key=KEY, instance=instance, resources=resources_for(config, **generator_fields))
    assert result.success
    [mat] = result.asset_materializations_for_node("triplets")
    return mat


@pytest.fixture()
def instance():
    with DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions("source", ["phantom_ct"])
        yield inst


def test_grounded_triplets_partition(tmp_path, instance):
    cfg = write_config(tmp_path, "grounded", {"backend": "grounded", "seed": 0})
    layout = DataLayout(tmp_path / "out")
    write_upstream(layout)
    mat = run(cfg, instance)
    table = pq.read_table(layout.table_path("triplets", PART))
    assert table.schema.equals(TRIPLET_SCHEMA)
    rows = table.to_pylist()
    assert [r["status"] for r in rows] == ["ok"] * 3
    r0 = rows[0]
    assert "patient's left" in r0["attributes"]["roi_location"] and "1.0% of the image" in r0["attributes"]["roi_location"]
    assert "patient's right" in rows[1]["description"]
    assert "heterogeneous" in r0["attributes"]["texture"] and "hypodense" in r0["attributes"]["texture"]
    assert "abutting the kidney" in r0["attributes"]["relations"] and "within the liver" in r0["attributes"]["relations"]
    assert r0["passages"] == [{"passage_id": "core:liver_tumour#0", "corpus": "core", "score": pytest.approx(0.71)}]
    clauses = json.loads(r0["clauses_json"])
    [k] = [c for c in clauses if c["source"] == "passage:core:liver_tumour#0"]  # knowledge as an interpretation
    assert "heterogeneous interior" in k["text"] and "a liver tumour" in k["text"] and "hypodense with" not in k["text"]
    # the region named is what the slice shows; the disagreement with the series' metadata is kept as a field
    assert (r0["body_region"], r0["agrees_with_metadata"]) == ("abdomen", True)
    assert (rows[1]["body_region"], rows[1]["body_region_origin"], rows[1]["agrees_with_metadata"]) == \
        ("lower chest", "expert:ct_anatomy@1", False)
    # without an image_facts row the anatomy ROIs decide (the liver: abdomen), the metadata being the last resort
    assert "lower chest" in rows[1]["description"] and (rows[2]["body_region_origin"], rows[2]["agrees_with_metadata"]) == \
        ("expert:anatomy@1", True)
    assert r0["roi_ids"] == ["sample0-r1", "sample0-a1"]  # the error row carries no facts
    assert r0["provenance"] == {"source": "phantom_ct", "volume_ref": "vol1", "slice_index": 10, "original_label": ["liver_tumour"],
                                "licence": "CC0-1.0", "split": "train"}
    assert "secret" not in json.dumps(rows, default=str)  # internal rel_path never travels
    assert r0["coarse_caption"].startswith("A computed tomography (CT) axial slice of the abdomen")
    assert all(not re.search(r"marked|region of interest|retrieved|metadata|labelled", r["description"]) for r in rows)
    md = mat.metadata
    assert md["ok"].value == 3 and md["failed"].value == 0
    assert md["generator_id"].value.startswith("grounded:")
    assert md["input_versions"].data["prompt:description_v2"] == r0["prompt_sha256"][:16]
    assert md["body_region_disagrees_with_metadata"].value == 1
    assert "config:generator" in md["input_versions"].data
    assert "patient's" in md["samples_markdown"].value
    first_version = mat.tags["dagster/data_version"]
    again = run(cfg, instance)
    assert again.tags["dagster/data_version"] == first_version  # deterministic rerun, same data version
    other = run(cfg, instance, backend="grounded")
    assert other.tags["dagster/data_version"] == first_version


@pytest.mark.slow
def test_openai_backend_partition_failures_cache_and_identity(tmp_path, instance):
    layout = DataLayout(tmp_path / "out")
    write_upstream(layout)
    grounded = run(write_config(tmp_path, "g", {"backend": "grounded"}), instance)

    seen_images = []

    def responder(body, attempt):
        seen_images.append(sum(1 for p in body["messages"][1]["content"] if p["type"] == "image_url"))
        if "+8" in user_text(body):  # sample2 (contrast +8 HU) is refused
            return Reply(refusal="cannot comply")
        return Reply(content=echo_answer(body))

    # make sample2 distinguishable in the prompt: a different contrast value
    rois = pq.read_table(layout.table_path("rois", PART)).to_pylist()
    for r in rois:
        if r["sample_id"] == "sample2" and r["kind"] == "finding":
            r["contrast"], r["intensity"] = 8.0, "isodense"
    write_table(layout.table_path("rois", PART), rows_to_table(rois, ROI_SCHEMA))
    with LoopbackChatServer(responder) as server:
        cfg = write_config(tmp_path, "o", {"backend": "openai", "model": "loop-vlm", "base_url": server.base_url,
                                            "concurrency": 2, "backoff_s": 0.01})
        mat = run(cfg, instance)
        rows = pq.read_table(layout.table_path("triplets", PART)).to_pylist()
        assert [r["status"] for r in rows] == ["ok", "ok", "failed"]
        assert rows[2]["failure_reason"].startswith("refused") and rows[2]["description"] is None and rows[2]["attributes"] is None
        assert rows[0]["generator"] == {"backend": "openai", "model": "loop-vlm", "version": "openai-compat-1.0"}
        assert mat.metadata["prompt_tokens"].value > 0 and mat.metadata["failed"].value == 1
        assert mat.metadata["generator_id"].value != grounded.metadata["generator_id"].value
        assert mat.tags["dagster/data_version"] != grounded.tags["dagster/data_version"]  # switching model -> new version
        assert mat.metadata["input_versions"].data["config:generator"] != grounded.metadata["input_versions"].data["config:generator"]
        # the ops sensor's view: the YAML now names the grounded generator again -> this partition is outdated
        from medtrinity_assets.assets.triplets import generator_versions
        from medtrinity_assets.config import read_config
        from medtrinity_assets.input_versions import outdated_names

        now = generator_versions(read_config(write_config(tmp_path, "g2", {"backend": "grounded"})), instance)
        assert outdated_names(mat.metadata["input_versions"].data, now) == ["config:generator"]
        assert outdated_names(grounded.metadata["input_versions"].data, now) == []
        n = len(server.requests)
        assert n == 3 and seen_images == [2, 2, 2]  # the slice and its ROI overlay, read from the blob store
        mat2 = run(cfg, instance)  # rerun: ok answers come from the cache, the failure is retried
        assert len(server.requests) == n + 1
        assert mat2.metadata["cached"].value == 2


def test_the_generator_resource_hands_over_the_typed_section_with_its_overrides(tmp_path):
    cfg = write_config(tmp_path, "g", {"backend": "grounded", "seed": 5, "chunk_size": 16})
    plain = resources_for(cfg)["generator"].settings()
    assert (plain.backend, plain.seed, plain.chunk_size, plain.top_k_passages) == ("grounded", 5, 16, 3)
    served = resources_for(cfg, backend="openai", model="m", base_url="http://127.0.0.1:9/v1")["generator"].settings()
    assert (served.backend, served.model, served.seed, served.chunk_size) == ("openai", "m", 5, 16)
    with pytest.raises(ValueError, match="generator resource .*needs model and base_url") as err:
        resources_for(cfg, backend="openai")["generator"].settings()
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_a_broken_generator_leaves_the_previous_shard_intact(tmp_path, instance):
    cfg = write_config(tmp_path, "grounded", {"backend": "grounded"})
    layout = DataLayout(tmp_path / "out")
    write_upstream(layout)
    run(cfg, instance)
    before = layout.table_path("triplets", PART).read_bytes()
    result = materialize([triplets], partition_key=KEY, instance=instance, raise_on_error=False,
                         resources=resources_for(cfg, backend="transformers", model_dir=str(tmp_path / "no_model")))
    assert not result.success
    assert layout.table_path("triplets", PART).read_bytes() == before


def test_unreachable_server_marks_every_sample_failed(tmp_path, instance):
    layout = DataLayout(tmp_path / "out")
    write_upstream(layout)
    cfg = write_config(tmp_path, "down", {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                                           "max_retries": 1, "backoff_s": 0.01, "timeout_s": 2})
    mat = run(cfg, instance)
    rows = pq.read_table(layout.table_path("triplets", PART)).to_pylist()
    assert {r["status"] for r in rows} == {"failed"} and all("connection error" in r["failure_reason"] for r in rows)
    assert all(r["description"] is None for r in rows) and mat.metadata["failed"].value == 3


def test_the_generator_resource_closes_its_backend_at_teardown(tmp_path, instance, monkeypatch):
    """The backend is opened by the asset and closed by Dagster's resource teardown, also when the step fails."""
    import medtrinity_assets.generation.backends as backends
    import medtrinity_assets.generation.run as generation_run

    closed: list[str] = []
    real_make_backend = backends.make_backend

    def recording_make_backend(settings, cache_dir=None):
        backend = real_make_backend(settings, cache_dir=cache_dir)
        real_close = backend.close
        backend.close = lambda: (closed.append(backend.name), real_close())
        return backend

    monkeypatch.setattr(backends, "make_backend", recording_make_backend)
    layout = DataLayout(tmp_path / "out")
    write_upstream(layout)
    cfg = write_config(tmp_path, "g", {"backend": "grounded"})
    run(cfg, instance)
    assert closed == ["grounded"]

    def broken_generate_rows(*args, **kwargs):
        raise RuntimeError("generation blew up")

    monkeypatch.setattr("medtrinity_assets.assets.triplets.generate_rows", broken_generate_rows)
    assert generation_run.generate_rows is not broken_generate_rows
    result = materialize([triplets], partition_key=KEY, instance=instance, resources=resources_for(cfg), raise_on_error=False)
    assert not result.success
    assert closed == ["grounded", "grounded"]
