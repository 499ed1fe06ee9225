"""Knowledge base figures: embedding throughput against the bare encoder, queries/s on 100k passages, recall.

- Embedding ratio: the pipeline path (read the core corpus, chunk with the encoder tokenizer, embed
  in batches into a FAISS index) against ``SentenceTransformer.encode`` alone on the very same
  passage texts, alternately in one process; ratio = pipeline passages/s / bare passages/s.
- Queries/s on 100k passages: a synthetic 100k x 384 index (low intrinsic dimension, as sentence
  embeddings have) searched exactly and with HNSW and IVF; single-query and batched search, and end
  to end through the Retriever (query embedding included).
- Recall: approximate vs exact recall@10 on those vectors; recall@5 of the labelled query set.

Run: ``python -m benchmarks.bench_knowledge [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np


def _vectors(n: int, d: int, seed: int, latent: int = 24) -> np.ndarray:
    proj = np.random.default_rng(7).standard_normal((latent, d)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, latent)).astype(np.float32) @ proj
    x += 0.3 * rng.standard_normal((n, d)).astype(np.float32) * np.sqrt(latent / 12)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _embedding_ratio(encoder, repeats: int) -> dict[str, Any]:
    from medtrinity_assets.knowledge.chunking import passages_table, tokenizer_for
    from medtrinity_assets.knowledge.corpus import bundled_core_path, read_corpus
    from medtrinity_assets.knowledge.index import build_corpus_index
    from medtrinity_assets.knowledge.settings import KnowledgeSettings

    settings = KnowledgeSettings()
    texts = passages_table("core", read_corpus("core", bundled_core_path()), tokenizer_for(encoder.spec.path),
                           settings.chunk_tokens, settings.overlap).column("text").to_pylist()
    encoder.model.encode(texts[:16], batch_size=settings.batch_size)  # warm-up
    pipe_t, bare_t = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        tok = tokenizer_for(encoder.spec.path)
        table = passages_table("core", read_corpus("core", bundled_core_path()), tok,
                               settings.chunk_tokens, settings.overlap)
        build_corpus_index("core", table, encoder, settings)
        pipe_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        encoder.model.encode(texts, batch_size=settings.batch_size, convert_to_numpy=True,
                             normalize_embeddings=True, show_progress_bar=False)
        bare_t.append(time.perf_counter() - t)
    pipe, bare = len(texts) / float(np.median(pipe_t)), len(texts) / float(np.median(bare_t))
    return {"passages": len(texts), "pipeline_passages_per_s": round(pipe, 1),
            "bare_encoder_passages_per_s": round(bare, 1), "embedding_ratio": round(pipe / bare, 3)}


def _qps(index, queries: np.ndarray, k: int) -> tuple[float, float, np.ndarray]:
    t = time.perf_counter()
    for q in queries[:200]:
        index.search(q[None, :], k)
    single = min(200, len(queries)) / (time.perf_counter() - t)
    t = time.perf_counter()
    _, ids = index.search(queries, k)
    batched = len(queries) / (time.perf_counter() - t)
    return single, batched, ids


def _search_figures(encoder, n: int, n_queries: int) -> dict[str, Any]:
    import pyarrow as pa

    from medtrinity_assets.knowledge.index import CorpusIndex, IndexManifest, VectorIndex
    from medtrinity_assets.knowledge.retrieval import Retriever
    from medtrinity_assets.knowledge.settings import KnowledgeSettings

    d, k = encoder.dim, 10
    x, q = _vectors(n, d, 1), _vectors(n_queries, d, 2)
    out: dict[str, Any] = {"vectors": n, "dim": d, "queries": n_queries}
    truth = None
    for kind in ("exact", "hnsw", "ivf"):
        t = time.perf_counter()
        index = VectorIndex.create(d, n, KnowledgeSettings(exact_max=0), kind=kind)
        index.add(x)
        index.finish()
        build = time.perf_counter() - t
        single, batched, ids = _qps(index, q, k)
        if truth is None:
            truth = ids
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, truth)]))
        out[kind] = {"build_s": round(build, 1), "qps_single": round(single, 1), "qps_batched": round(batched, 1),
                     "recall_at_10": round(recall, 4), "params": index.params}
        if kind == "hnsw":
            hnsw = index
    # end to end: query text -> embedding -> HNSW search over the 100k passages -> hits with titles
    passages = pa.table({"passage_id": [f"syn:{i}#0" for i in range(n)], "doc_id": [str(i) for i in range(n)],
                         "title": [f"passage {i}" for i in range(n)], "text": [""] * n})
    manifest = IndexManifest("syn", encoder.id, d, n, "hnsw", hnsw.params, "", {})
    retriever = Retriever([CorpusIndex(manifest, hnsw, passages)], encoder)
    texts = [f"finding number {i} on CT of the abdomen" for i in range(min(n_queries, 200))]
    t = time.perf_counter()
    for text in texts:
        retriever.search([text], 5)
    out["end_to_end_qps_single"] = round(len(texts) / (time.perf_counter() - t), 1)
    t = time.perf_counter()
    retriever.search(texts, 5)
    out["end_to_end_qps_batched"] = round(len(texts) / (time.perf_counter() - t), 1)
    return out


def _core_recall(encoder) -> dict[str, Any]:
    from pathlib import Path

    from medtrinity_assets.knowledge.chunking import passages_table, tokenizer_for
    from medtrinity_assets.knowledge.corpus import bundled_core_path, read_corpus
    from medtrinity_assets.knowledge.index import build_corpus_index
    from medtrinity_assets.knowledge.retrieval import Retriever
    from medtrinity_assets.knowledge.settings import KnowledgeSettings

    s = KnowledgeSettings()
    table = passages_table("core", read_corpus("core", bundled_core_path()), tokenizer_for(encoder.spec.path),
                           s.chunk_tokens, s.overlap)
    r = Retriever([build_corpus_index("core", table, encoder, s)], encoder)
    path = Path(__file__).resolve().parents[1] / "medtrinity_assets_tests" / "data" / "kb_queries.jsonl"
    qs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    hits = r.search([q["query"] for q in qs], 5)
    at1 = np.mean([h[0].doc_id == q["expect"] for q, h in zip(qs, hits)])
    at5 = np.mean([q["expect"] in {x.doc_id for x in h} for q, h in zip(qs, hits)])
    return {"labelled_queries": len(qs), "recall_at_1": round(float(at1), 3), "recall_at_5": round(float(at5), 3)}


def main(quick: bool = False) -> dict[str, Any]:
    from medtrinity_assets.knowledge.embedding import load_encoder

    encoder = load_encoder()
    return {
        "encoder": encoder.id,
        "embedding": _embedding_ratio(encoder, repeats=1 if quick else 3),
        "search": _search_figures(encoder, n=20_000 if quick else 100_000, n_queries=200 if quick else 1000),
        "core_recall": _core_recall(encoder),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(main(quick=parser.parse_args().quick), indent=2))
