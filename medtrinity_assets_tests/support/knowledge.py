"""Shared pieces of the knowledge tests: the bundled encoder, the core passages, synthetic corpora."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

QUERY_SET = Path(__file__).resolve().parents[1] / "data" / "kb_queries.jsonl"


@functools.lru_cache(maxsize=1)
def bundled_encoder():
    from medtrinity_assets.knowledge.embedding import load_encoder

    return load_encoder()


class CountingEncoder:
    """Wraps an encoder and counts the texts it embeds (proves what was, or was not, re-embedded)."""

    def __init__(self, inner):
        self.inner = inner
        self.id = inner.id
        self.dim = inner.dim
        self.spec = inner.spec
        self.texts = 0
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        self.texts += len(texts)
        return self.inner.encode(texts)


def core_passages(chunk_tokens: int = 192, overlap: int = 32):
    from medtrinity_assets.knowledge.chunking import passages_table, tokenizer_for
    from medtrinity_assets.knowledge.corpus import bundled_core_path, read_corpus

    enc = bundled_encoder()
    return passages_table("core", read_corpus("core", bundled_core_path()), tokenizer_for(enc.spec.path),
                          chunk_tokens, overlap)


def labelled_queries() -> list[dict]:
    return [json.loads(line) for line in QUERY_SET.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_medrag_file(path: Path, n: int = 12, bad_lines: int = 2) -> Path:
    """A small file in MedRAG's corpus form (id, title, content/contents), with a few broken lines."""
    topics = ["aortic dissection", "renal infarction", "splenic rupture", "hepatic adenoma", "osteomyelitis",
              "sarcoidosis", "thymoma", "lymphoma", "cholangiocarcinoma", "endometrioma", "achalasia", "gout"]
    lines = []
    for i in range(n):
        topic = topics[i % len(topics)]
        key = "content" if i % 2 == 0 else "contents"
        body = f"{topic.capitalize()} is discussed here with imaging signs number {i} and clinical course. " * 3
        text = body if key == "content" else f"{topic.capitalize()}. {body}"
        lines.append(json.dumps({"id": f"pmid{i:04d}", "title": topic.capitalize(), key: text}))
    for j in range(bad_lines):
        lines.insert(3 + j * 4, "{not json" if j % 2 == 0 else json.dumps({"id": "x", "title": "no text"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def low_rank_vectors(n: int, d: int, seed: int, latent: int = 12) -> np.ndarray:
    """Normalised vectors with a low intrinsic dimension, as sentence embeddings have."""
    proj = np.random.default_rng(123).standard_normal((latent, d)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, latent)).astype(np.float32) @ proj
    x += 0.3 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
