"""Retrieval quality on the labelled query set, index save/reload without re-embedding, queries, context rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medtrinity_assets.knowledge.context import build_context
from medtrinity_assets.knowledge.index import (
    CorpusIndex,
    KnowledgeIndexError,
    build_corpus_index,
    index_is_current,
)
from medtrinity_assets.knowledge.queries import build_queries, build_query
from medtrinity_assets.knowledge.retrieval import Retriever
from medtrinity_assets.knowledge.settings import KnowledgeSettings
from medtrinity_assets.storage import rows_to_table
from medtrinity_assets.tables import IMAGE_SCHEMA, RETRIEVED_PASSAGES_SCHEMA
from medtrinity_assets_tests.support.knowledge import (
    CountingEncoder,
    bundled_encoder,
    core_passages,
    labelled_queries,
)

SETTINGS = KnowledgeSettings()


pytestmark = pytest.mark.slow  # one module-wide index over the bundled corpus (seconds of embedding)

@pytest.fixture(scope="module")
def core_index():
    return build_corpus_index("core", core_passages(), bundled_encoder(), SETTINGS)


def test_recall_at_5_on_labelled_queries(core_index):
    queries = labelled_queries()
    hits = Retriever([core_index], bundled_encoder()).search([q["query"] for q in queries], 5)
    found = [q["expect"] in {h.doc_id for h in h5} for q, h5 in zip(queries, hits)]
    recall = sum(found) / len(found)
    misses = [q["query"] for q, ok in zip(queries, found) if not ok]
    assert recall >= 0.9, f"recall@5 {recall:.3f}; missed: {misses}"
    # retrieval is not trivially returning one passage: the top-1 titles vary across queries
    assert len({h[0].title for h in hits}) > 0.7 * len(queries)


def test_index_reloads_without_reembedding(core_index, tmp_path):
    enc = CountingEncoder(bundled_encoder())
    small = build_corpus_index("core", core_index.passages.slice(0, 12), enc, SETTINGS)
    assert enc.texts == small.manifest.count == 12  # every passage embedded once while building
    built = core_index
    built.save(tmp_path / "core")
    enc.texts = enc.calls = 0
    loaded = CorpusIndex.load(tmp_path / "core")
    assert enc.calls == 0  # loading embeds nothing
    assert loaded.manifest == built.manifest and loaded.vectors.count == built.manifest.count
    assert index_is_current(tmp_path / "core", loaded.passages, enc.id, SETTINGS)
    hits = Retriever([loaded], enc).search(["water density cyst in the kidney"] * 3, 3)
    assert enc.calls == 1 and enc.texts == 1  # only the (deduplicated) query was embedded
    assert hits[0][0].doc_id == "kidney_simple_cyst"
    # same scores as the in-memory index
    q = bundled_encoder().encode(["water density cyst in the kidney"])
    s1, i1 = built.vectors.search(q, 5)
    s2, i2 = loaded.vectors.search(q, 5)
    assert np.array_equal(i1, i2) and np.allclose(s1, s2)


def test_encoder_change_makes_index_stale(core_index, tmp_path):
    core_index.save(tmp_path / "core")
    other = CountingEncoder(bundled_encoder())
    other.id = "some-other-encoder@0123456789ab"
    assert not index_is_current(tmp_path / "core", core_index.passages, other.id, SETTINGS)
    with pytest.raises(KnowledgeIndexError, match="stale"):
        Retriever([CorpusIndex.load(tmp_path / "core")], other)
    changed = core_index.manifest.__class__(**{**core_index.manifest.__dict__, "encoder": other.id})
    assert changed.data_version != core_index.manifest.data_version
    assert core_index.manifest.data_version.startswith(bundled_encoder().id)


def test_incomplete_index_folder_is_reported(tmp_path):
    with pytest.raises(KnowledgeIndexError, match="materialise knowledge_index"):
        CorpusIndex.load(tmp_path / "nothing")


def test_queries_from_image_and_roi_facts():
    liver = {"sample_id": "s1", "modality": "CT", "organ": "abdomen", "labels": ["liver cyst"]}
    rois = [
        {"label": "liver", "kind": "anatomy", "status": "ok"},
        {"label": "liver cyst", "kind": "finding", "status": "ok", "intensity": "hypodense",
         "texture": "homogeneous", "margin": "well_defined", "region": "liver", "side": "right"},
        {"label": "bad", "kind": "finding", "status": "error"},
    ]
    q = build_query(liver, rois)
    assert q == "liver cyst, hypodense homogeneous well defined on CT abdomen"
    # the same finding on the other side gives the same query (embedded once per shard)
    rois_left = [dict(r, side="left") for r in rois]
    assert build_query(liver, rois_left) == q
    assert build_query({"modality": "MR", "organ": "brain"}) == "normal MRI brain without abnormality"
    assert build_query({"modality": "FUNDUS", "labels": ["diabetic retinopathy"]}) == \
        "diabetic retinopathy on fundus photograph of the retina"
    # ROI rows without a 'kind' column: anatomy names are recognised
    assert build_query({"modality": "CT"}, [{"label": "spleen"}, {"label": "spleen lesion"}]) == "spleen lesion on CT"
    # one query per finding; a volume slice with ROIs keeps only the findings its ROIs show
    ct_slice = {"modality": "CT", "organ": "abdomen", "labels": ["liver tumour", "lung nodule"], "slice_index": 0}
    assert build_queries(ct_slice) == ["liver tumour on CT abdomen", "lung nodule on CT abdomen"]
    assert build_queries(ct_slice, [{"label": "lung nodule", "kind": "finding", "status": "ok"}]) == \
        ["lung nodule on CT abdomen"]
    assert build_queries(ct_slice, [{"label": "liver", "kind": "anatomy", "status": "ok"}]) == \
        ["normal CT abdomen without abnormality"]
    assert build_queries({"modality": "DX", "labels": ["pneumonia"], "slice_index": -1},
                         [{"label": "lung", "kind": "anatomy", "status": "ok"}]) == ["pneumonia on radiograph X-ray"]


def test_context_rows_for_demo_like_samples(core_index):
    images = rows_to_table([
        {"sample_id": "a", "modality": "CT", "organ": "abdomen", "labels": []},
        {"sample_id": "b", "modality": "CT", "organ": "abdomen", "labels": []},
        {"sample_id": "c", "modality": "MR", "organ": "brain", "labels": []},
        {"sample_id": "d", "modality": "FUNDUS", "organ": "eye", "labels": []},
        {"sample_id": "e", "modality": "HISTO", "organ": "tissue", "labels": ["immunohistochemistry"]},
        {"sample_id": "f", "modality": "CT", "organ": "abdomen", "labels": ["liver cyst", "spleen lesion"]},
    ], IMAGE_SCHEMA)
    import pyarrow as pa

    rois = pa.table({  # an older ROI table: fewer columns than the ROI schema, read defensively
        "sample_id": ["a", "a", "b"],
        "label": ["kidney", "kidney cyst", "lung nodule"],
        "intensity": ["", "hypodense", "hyperdense"],
    })
    enc = CountingEncoder(bundled_encoder())
    result = build_context(images, rois, Retriever([core_index], enc), 5, "demo", "s00")
    assert result.table.schema == RETRIEVED_PASSAGES_SCHEMA
    rows = {r["sample_id"]: r for r in result.table.to_pylist()}
    assert result.roi_facts_used and result.unique_queries == 7
    assert enc.calls == 1 and enc.texts == 7
    top_docs = {sid: [p.split(":")[1].split("#")[0] for p in r["passage_ids"]] for sid, r in rows.items()}
    assert "kidney_simple_cyst" in top_docs["a"][:3]
    assert "chest_pulmonary_nodule" in top_docs["b"][:3]
    assert "normal_brain_mr" in top_docs["c"][:3]
    assert "fundus_normal" in top_docs["d"][:3]
    assert "histo_ihc_staining" in top_docs["e"][:3]
    # two findings: each one's best passage comes first (round-robin), no passage twice
    assert set(top_docs["f"][:2]) == {"liver_simple_cyst", "spleen_focal_lesion"}
    for r in rows.values():
        assert len(r["passage_ids"]) == 5 == len(set(r["passage_ids"]))
        assert r["encoder"] == enc.id
    assert rows["c"]["scores"] == sorted(rows["c"]["scores"], reverse=True)


def test_merge_across_corpora_by_score(core_index):
    from medtrinity_assets.knowledge.chunking import WhitespaceTokenizer, passages_table
    from medtrinity_assets.knowledge.corpus import Document

    extra = passages_table("notes", [Document("gout", "Gout", "Urate crystal arthritis of the big toe joint.")],
                           WhitespaceTokenizer(), 64, 8)
    other = build_corpus_index("notes", extra, bundled_encoder(), SETTINGS)
    r = Retriever([core_index, other], bundled_encoder())
    hits = r.search(["uric acid crystals in the first toe joint"], 5)[0]
    assert hits[0].corpus == "notes" and {h.corpus for h in hits} == {"notes", "core"}
    assert json.dumps([h.score for h in hits])  # plain floats


def test_streamed_passages_and_index_folder_match_in_memory(core_index, tmp_path):
    from medtrinity_assets.knowledge.chunking import passage_batches, tokenizer_for
    from medtrinity_assets.knowledge.corpus import bundled_core_path, read_corpus
    from medtrinity_assets.knowledge.index import build_index_folder, table_digest, write_passages

    enc = CountingEncoder(bundled_encoder())
    batches = passage_batches("core", read_corpus("core", bundled_core_path()), tokenizer_for(enc.spec.path),
                              SETTINGS.chunk_tokens, SETTINGS.overlap, batch_rows=25)
    rows, digest = write_passages(tmp_path / "core.parquet", batches)
    assert rows == core_index.manifest.count and digest == table_digest(core_index.passages)
    manifest = build_index_folder("core", tmp_path / "core.parquet", tmp_path / "idx", enc, SETTINGS, batch_rows=40)
    assert enc.texts == rows and enc.calls == 3  # embedded batch by batch from the file
    assert manifest.passages_sha256 == core_index.manifest.passages_sha256
    assert manifest.data_version == core_index.manifest.data_version
    assert index_is_current(tmp_path / "idx", tmp_path / "core.parquet", enc.id, SETTINGS)
    loaded = CorpusIndex.load(tmp_path / "idx")
    q = bundled_encoder().encode(["ring enhancing brain lesion with restricted diffusion"])
    assert np.array_equal(loaded.vectors.search(q, 5)[1], core_index.vectors.search(q, 5)[1])
