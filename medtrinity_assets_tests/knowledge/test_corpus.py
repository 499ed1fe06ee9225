"""Core corpus content, corpus readers (core, MedRAG, JSONL, Markdown), chunking and settings."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from medtrinity_assets.knowledge.chunking import (
    WhitespaceTokenizer,
    chunk_document,
    passages_table,
    token_windows,
    tokenizer_for,
)
from medtrinity_assets.knowledge.corpus import (
    CorpusError,
    Document,
    IngestReport,
    bundled_core_path,
    read_corpus,
    split_markdown,
)
from medtrinity_assets.knowledge.embedding import resolve_encoder
from medtrinity_assets.knowledge.settings import KnowledgeSettings
from medtrinity_assets.tables import PASSAGE_SCHEMA
from medtrinity_assets_tests.support.knowledge import labelled_queries, write_medrag_file


def _core():
    report = IngestReport()
    docs = list(read_corpus("core", bundled_core_path(), report))
    return docs, report


def test_core_corpus_is_complete_and_valid():
    docs, report = _core()
    assert report.bad == 0, report.examples
    assert len(docs) >= 70
    ids = {d.doc_id for d in docs}
    # the demo's findings and normal studies must be covered
    for needed in ["liver_simple_cyst", "liver_hcc", "kidney_simple_cyst", "chest_pulmonary_nodule",
                   "spleen_focal_lesion", "normal_brain_mr", "fundus_normal", "histo_ihc_staining",
                   "normal_abdominal_ct", "normal_chest_radiograph", "normal_abdominal_us", "normal_abdominal_mr",
                   "normal_head_ct", "normal_liver_ct", "normal_spleen_ct", "normal_kidney_ct"]:
        assert needed in ids, needed
    organs = {d.meta["organ"] for d in docs}
    assert {"brain", "lung", "liver", "kidney", "pancreas", "spleen", "breast", "skin", "colon", "retina",
            "bone"} <= organs
    for d in docs:
        assert "On " in d.text and "Organ:" in d.text, d.doc_id
    histo = {d.doc_id for d in docs if d.doc_id.startswith("histo_")}
    assert len(histo) >= 10


def test_query_set_is_labelled_with_existing_entries_in_other_words():
    docs, _ = _core()
    by_id = {d.doc_id: d for d in docs}
    queries = labelled_queries()
    assert len(queries) >= 40
    for q in queries:
        assert q["expect"] in by_id, q
        entry = by_id[q["expect"]]
        # not a copy: the query is not a substring of the entry and does not start with its title
        assert q["query"].lower() not in entry.text.lower()
        assert not q["query"].lower().startswith(entry.title.lower())


def test_core_reader_reports_bad_entries(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "- {id: good_one, title: T, finding: F., organ: liver, modalities: [CT], appearance: {CT: dark}, differential: []}\n"
        "- {id: Bad-Id, title: T, finding: F., organ: liver, modalities: [CT], appearance: {CT: dark}, differential: []}\n"
        "- {id: no_app, title: T, finding: F., organ: liver, modalities: [CT], differential: []}\n"
        "- {id: good_one, title: T, finding: F., organ: liver, modalities: [CT], appearance: {CT: x}, differential: []}\n"
    )
    (tmp_path / "b.yaml").write_text("key: [unclosed\n")
    report = IngestReport()
    docs = list(read_corpus("core", tmp_path, report))
    assert [d.doc_id for d in docs] == ["good_one"]
    assert report.bad == 4
    text = "\n".join(report.examples)
    assert "Bad-Id" in text and "appearance" in text and "duplicate" in text and "b.yaml" in text


def test_medrag_ingestion_counts_bad_lines(tmp_path):
    path = write_medrag_file(tmp_path / "pubmed_chunk.jsonl", n=12, bad_lines=2)
    report = IngestReport()
    docs = list(read_corpus("medrag", path, report))
    assert len(docs) == 12 and report.documents == 12
    assert report.bad == 2
    assert any(":4:" in e and "JSON" in e for e in report.examples)  # file and line named
    assert any("no non-empty text" in e for e in report.examples)
    by_id = {d.doc_id: d for d in docs}
    # 'contents' repeats the title in MedRAG; it is kept once
    assert by_id["pmid0001"].text.startswith("Renal infarction is discussed")
    assert not by_id["pmid0001"].text.startswith("Renal infarction. ")
    assert by_id["pmid0000"].text.startswith("Aortic dissection is discussed")


def test_medrag_folder_of_jsonl(tmp_path):
    folder = tmp_path / "statpearls"
    folder.mkdir()
    write_medrag_file(folder / "a.jsonl", n=3, bad_lines=0)
    write_medrag_file(folder / "b.jsonl", n=4, bad_lines=0)
    report = IngestReport()
    docs = list(read_corpus("medrag", folder, report))
    assert len(docs) == 7 and report.files == 2
    table = passages_table("statpearls", docs, WhitespaceTokenizer(), 16, 4)
    ids = table.column("passage_id").to_pylist()
    assert len(ids) == len(set(ids)), "repeated document ids across files must not collide"


def test_missing_corpus_path_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        list(read_corpus("medrag", tmp_path / "nope.jsonl"))


def test_plain_jsonl_and_markdown(tmp_path):
    (tmp_path / "notes.jsonl").write_text(
        json.dumps({"title": "Gout", "text": "Urate crystals in joints."}) + "\n" + json.dumps({"title": "x"}) + "\n"
    )
    report = IngestReport()
    docs = list(read_corpus("jsonl", tmp_path / "notes.jsonl", report))
    assert [d.title for d in docs] == ["Gout"] and report.bad == 1
    md = tmp_path / "md"
    md.mkdir()
    (md / "liver.md").write_text("# Liver\nIntro text.\n## Cysts\nWater density.\n```\n# not a heading\n```\n## Tumours\nEnhance.\n")
    docs = list(read_corpus("markdown", md))
    assert [d.title for d in docs] == ["Liver", "Liver > Cysts", "Liver > Tumours"]
    assert "# not a heading" in docs[1].text
    assert split_markdown("no heading at all") == [("", "no heading at all")]


def test_token_windows_overlap_and_cover():
    assert token_windows(0, 10, 2) == []
    assert token_windows(7, 10, 2) == [(0, 7)]
    w = token_windows(25, 10, 3)
    assert w == [(0, 10), (7, 17), (14, 24), (21, 25)]
    for (_a, b), (c, _) in zip(w, w[1:]):
        assert b - c == 3


def test_chunking_uses_the_encoder_tokenizer_and_keeps_case():
    tok = tokenizer_for(resolve_encoder(None).path)
    assert tok.name.startswith("tokenizer.json")
    text = "Hepatocellular Carcinoma shows ARTERIAL hyperenhancement. " * 40
    doc = Document("d1", "HCC", text)
    chunks = chunk_document(doc, tok, 64, 16)
    assert len(chunks) > 3
    assert all(c.n_tokens <= 64 for c in chunks)
    assert "ARTERIAL" in chunks[0].body  # sliced from the original text, not decoded lower-case
    assert all(c.text.startswith("HCC. ") for c in chunks)
    # the word-piece tokenizer splits long words: more tokens than whitespace words
    assert len(tok.spans(text)) > len(WhitespaceTokenizer().spans(text))


def test_passages_table_schema(tmp_path):
    docs = [Document("a", "A", "one two three four five six seven"), Document("b", "", "x y")]
    table = passages_table("c", docs, WhitespaceTokenizer(), 4, 1)
    assert table.schema == PASSAGE_SCHEMA
    assert table.column("passage_id").to_pylist() == ["c:a#0", "c:a#1", "c:b#0"]
    assert table.column("text").to_pylist()[2] == "x y"


def test_settings_validation():
    s = KnowledgeSettings(chunk_tokens=100, overlap=10)
    assert s.chunk_tokens == 100 and s.encoder == ""
    with pytest.raises(ValidationError, match="overlap"):
        KnowledgeSettings(chunk_tokens=10, overlap=10)
    with pytest.raises(ValidationError, match="chunk_size"):
        KnowledgeSettings(chunk_size=10)
    with pytest.raises(ValidationError, match="approximate"):
        KnowledgeSettings(approximate="lsh")
