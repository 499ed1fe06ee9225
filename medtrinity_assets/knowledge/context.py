"""The ``context`` rows of one source x shard: a query per image, top-k passages per distinct query."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from medtrinity_assets.knowledge.queries import build_query
from medtrinity_assets.knowledge.records import CONTEXT_SCHEMA
from medtrinity_assets.knowledge.retrieval import Retriever
from medtrinity_assets.storage import rows_to_table

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


def build_context(images: pa.Table, rois: pa.Table | None, retriever: Retriever, k: int,
                  source: str, shard: str) -> ContextResult:
    by_sample = rois_by_sample(rois)
    cols = [c for c in ("sample_id", "modality", "organ", "disease", "labels") if c in images.column_names]
    rows = images.select(cols).to_pylist()
    queries = [build_query(r, by_sample.get(r["sample_id"], ())) for r in rows]
    hits = retriever.search(queries, k)
    out = []
    for row, query, found in zip(rows, queries, hits):
        out.append({
            "sample_id": row["sample_id"],
            "source": source,
            "shard": shard,
            "query": query,
            "passage_ids": [h.passage_id for h in found],
            "corpora": [h.corpus for h in found],
            "titles": [h.title for h in found],
            "scores": [h.score for h in found],
            "encoder": retriever.encoder.id,
        })
    return ContextResult(rows_to_table(out, CONTEXT_SCHEMA), len(set(queries)), bool(by_sample))
