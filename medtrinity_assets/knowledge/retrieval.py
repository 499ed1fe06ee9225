"""Top-k retrieval across corpus indexes: embed each distinct query once, search every index, merge by score."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medtrinity_assets.knowledge.index import CorpusIndex, KnowledgeIndexError, corpus_index_folders
from medtrinity_assets.knowledge.queries import passage_meta


@dataclass(frozen=True)
class Hit:
    corpus: str
    passage_id: str
    doc_id: str
    title: str
    text: str
    score: float
    meta: Mapping[str, Any] = field(default_factory=dict)  # the document's facts (core corpus: organ, modalities ...)

    @property
    def normal(self) -> bool:
        """The passage describes a normal study (core corpus entries flagged normal)."""
        return bool(self.meta.get("normal", False))


class Retriever:
    """Searches several corpus indexes built with one encoder; scores are comparable cosine similarities."""

    def __init__(self, indexes: Sequence[CorpusIndex], encoder: Any):
        if not indexes:
            raise KnowledgeIndexError("no corpus index to search; materialise knowledge_index first")
        for ci in indexes:
            if ci.manifest.encoder != encoder.id:
                raise KnowledgeIndexError(
                    f"corpus {ci.manifest.corpus!r} was indexed with encoder {ci.manifest.encoder} but the "
                    f"configured encoder is {encoder.id}; rematerialise knowledge_index (the index is stale)"
                )
        self.indexes = list(indexes)
        self.encoder = encoder

    @classmethod
    def from_folder(cls, knowledge_root: Path, encoder: Any, corpora: Iterable[str] | None = None) -> Retriever:
        wanted = set(corpora) if corpora is not None else None
        folders = [f for f in corpus_index_folders(knowledge_root) if wanted is None or f.name in wanted]
        return cls([CorpusIndex.load(f) for f in folders], encoder)

    @property
    def corpora(self) -> list[str]:
        return [ci.manifest.corpus for ci in self.indexes]

    def search_vectors(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-k hits per query vector over all indexes, best first."""
        merged: list[list[Hit]] = [[] for _ in range(len(vectors))]
        for ci in self.indexes:
            scores, ids = ci.vectors.search(vectors, k)
            valid = ids >= 0
            # fetch only the rows that were hit (a PubMed-sized table is never turned into Python lists)
            cols = [c for c in ("passage_id", "doc_id", "title", "text", "meta_json") if c in ci.passages.column_names]
            rows = ci.passages.select(cols).take(ids[valid]).to_pylist()
            it = iter(rows)
            for qi in range(len(vectors)):
                for score, ok in zip(scores[qi], valid[qi]):
                    if ok:
                        r = next(it)
                        merged[qi].append(Hit(ci.manifest.corpus, r["passage_id"], r["doc_id"], r["title"],
                                              r["text"], float(score), passage_meta(r.get("meta_json"))))
        return [sorted(h, key=lambda x: (-x.score, x.passage_id))[:k] for h in merged]

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """Hits per query; identical query strings are embedded and searched once."""
        unique = list(dict.fromkeys(queries))
        hits = self.search_vectors(self.encoder.encode(unique), k) if unique else []
        by_query = dict(zip(unique, hits))
        return [by_query[q] for q in queries]
