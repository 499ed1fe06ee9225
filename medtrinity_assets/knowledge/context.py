"""The ``context`` rows of one source x shard: a query per image, top-k passages per distinct query."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from medtrinity_assets.knowledge.queries import build_queries, is_finding_query
from medtrinity_assets.knowledge.retrieval import Hit, Retriever
from medtrinity_assets.storage import rows_to_table
from medtrinity_assets.tables import RETRIEVED_PASSAGES_SCHEMA

ROI_COLUMNS = ("sample_id", "label", "kind", "status", "side", "region", "intensity", "texture", "margin", "shape")


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


def interleave(ranked: list[list[Hit]], k: int) -> list[Hit]:
    """Round-robin over per-finding rankings (best of each finding first), without repeats, up to k."""
    out: list[Hit] = []
    seen: set[str] = set()
    for rank in range(max((len(r) for r in ranked), default=0)):
        for hits in ranked:
            if rank < len(hits) and hits[rank].passage_id not in seen:
                seen.add(hits[rank].passage_id)
                out.append(hits[rank])
    return out[:k]


def build_context(images: pa.Table, rois: pa.Table | None, retriever: Retriever, k: int,
                  source: str, shard: str) -> ContextResult:
    """Distinct queries of the shard are embedded and searched once; each sample merges its findings' hits."""
    by_sample = rois_by_sample(rois)
    cols = [c for c in ("sample_id", "modality", "organ", "disease", "labels", "slice_index")
            if c in images.column_names]
    rows = images.select(cols).to_pylist()
    per_sample = [build_queries(r, by_sample.get(r["sample_id"], ())) for r in rows]
    unique = list(dict.fromkeys(q for qs in per_sample for q in qs))
    # a finding is grounded in what that finding looks like, not in a normal-study description that
    # shares its organ and modality words: those passages are dropped from finding queries (asking 2k)
    hits = {
        q: ([h for h in found if not h.normal][:k] if is_finding_query(q) else found[:k])
        for q, found in zip(unique, retriever.search(unique, 2 * k))
    }
    out = []
    for row, queries in zip(rows, per_sample):
        found = interleave([hits[q] for q in queries], k)
        out.append({
            "sample_id": row["sample_id"],
            "source": source,
            "shard": shard,
            "query": " | ".join(queries),
            "passage_ids": [h.passage_id for h in found],
            "corpora": [h.corpus for h in found],
            "titles": [h.title for h in found],
            "scores": [h.score for h in found],
            "encoder": retriever.encoder.id,
        })
    return ContextResult(rows_to_table(out, RETRIEVED_PASSAGES_SCHEMA), len(unique), bool(by_sample))
