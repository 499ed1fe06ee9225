"""The ``context`` rows of one source x shard: a query per image, top-k passages per distinct query."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from medtrinity_assets.knowledge.queries import Query, build_queries
from medtrinity_assets.knowledge.retrieval import Hit, Retriever
from medtrinity_assets.storage import rows_to_table
from medtrinity_assets.tables import RETRIEVED_PASSAGES_SCHEMA

ROI_COLUMNS = ("sample_id", "label", "kind", "status", "side", "region", "intensity", "attenuation", "texture",
               "margin", "shape")
SEARCH_DEPTH = 8  # hits searched per passage kept: organ, modality and finding filters drop most of them


@dataclass
class ContextResult:
    table: pa.Table
    unique_queries: int
    roi_facts_used: bool


def rois_by_sample(rois: pa.Table | None) -> dict[str, list[dict[str, Any]]]:
    """ROI rows grouped by sample, reading only the columns present (the ROI table may be older or absent)."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if rois is None or "sample_id" not in rois.column_names or "label" not in rois.column_names:
        return grouped
    cols = [c for c in ROI_COLUMNS if c in rois.column_names]
    for row in rois.select(cols).to_pylist():
        grouped[row["sample_id"]].append(row)
    return grouped


def answer(query: Query, hits: list[Hit], k: int) -> list[Hit]:
    """The hits that answer ``query``: organ, modality and finding match; one passage per document (its
    best chunk) and no text twice (the same entry in two corpora); best first, at most ``k``."""
    out: list[Hit] = []
    docs: set[tuple[str, str]] = set()
    texts: set[str] = set()
    for h in hits:
        key, text = (h.corpus, h.doc_id), " ".join(h.text.split()).lower()
        if key in docs or text in texts or not query.accepts(h.title, h.text, h.meta):
            continue
        docs.add(key)
        texts.add(text)
        out.append(h)
        if len(out) == k:
            break
    return out


def interleave(ranked: list[list[Hit]], k: int) -> list[Hit]:
    """Round-robin over per-finding rankings (best of each finding first), one passage per document, up to k."""
    out: list[Hit] = []
    seen: set[tuple[str, str]] = set()
    for rank in range(max((len(r) for r in ranked), default=0)):
        for hits in ranked:
            if rank < len(hits) and (hits[rank].corpus, hits[rank].doc_id) not in seen:
                seen.add((hits[rank].corpus, hits[rank].doc_id))
                out.append(hits[rank])
    return out[:k]


def build_context(images: pa.Table, rois: pa.Table | None, retriever: Retriever, k: int,
                  source: str, shard: str) -> ContextResult:
    """Distinct queries of the shard are embedded and searched once; each sample merges its findings' answers.

    A sample may get fewer than ``k`` passages: a passage about another organ, another modality or
    another finding is no context at all, and the generator would rather have none."""
    by_sample = rois_by_sample(rois)
    cols = [c for c in ("sample_id", "modality", "organ", "disease", "labels", "slice_index", "caption_in")
            if c in images.column_names]
    rows = images.select(cols).to_pylist()
    per_sample = [build_queries(r, by_sample.get(r["sample_id"], ())) for r in rows]
    unique = list(dict.fromkeys(q for qs in per_sample for q in qs))
    texts = list(dict.fromkeys(q.text for q in unique))
    found = dict(zip(texts, retriever.search(texts, SEARCH_DEPTH * k)))
    hits = {q: answer(q, found[q.text], k) for q in unique}
    out = []
    for row, queries in zip(rows, per_sample):
        chosen = interleave([hits[q] for q in queries], k)
        out.append({
            "sample_id": row["sample_id"],
            "source": source,
            "shard": shard,
            "query": " | ".join(q.text for q in queries),
            "passage_ids": [h.passage_id for h in chosen],
            "corpora": [h.corpus for h in chosen],
            "titles": [h.title for h in chosen],
            "scores": [h.score for h in chosen],
            "encoder": retriever.encoder.id,
        })
    return ContextResult(rows_to_table(out, RETRIEVED_PASSAGES_SCHEMA), len(texts), bool(by_sample))
