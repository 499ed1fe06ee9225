"""Read what one export shard needs from the tables: triplets, image rows, ROI rows and image facts.

Tables are one Parquet file per (source, shard) partition; a missing file reads as no rows (a source
whose shard holds no subject). The dataset-wide exclusions (duplicates, leaks) are not decided here:
they are the ``near_duplicates`` asset's tables (``quality/near_duplicates.read``), so every shard's
export agrees on which member of a near-duplicate group represents it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from medtrinity_assets.storage import DataLayout


def read_rows(path: Path, columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Rows of one partition file (only the wanted columns that exist); [] when not materialised."""
    if not path.exists():
        return []
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    cols = [c for c in columns if c in names] if columns is not None else None
    return pf.read(columns=cols).to_pylist()


def table_files(layout: DataLayout, table: str) -> list[Path]:
    base = layout.root / "tables" / table
    return sorted(base.rglob("*.parquet")) if base.exists() else []


@dataclass
class ShardInputs:
    triplets: list[dict[str, Any]]
    images_by_id: dict[str, dict[str, Any]]
    rois_by_id: dict[str, list[dict[str, Any]]]
    sources: list[str]
    image_facts_by_id: dict[str, dict[str, Any]]


def load_shard(layout: DataLayout, shard: str, sources: Iterable[str]) -> ShardInputs:
    triplets: list[dict[str, Any]] = []
    images: dict[str, dict[str, Any]] = {}
    rois: dict[str, list[dict[str, Any]]] = {}
    facts: dict[str, dict[str, Any]] = {}
    present = []
    for source in sources:
        part = {"source": source, "shard": shard}
        t = read_rows(layout.table_path("triplets", part))
        if t:
            present.append(source)
        triplets += t
        for r in read_rows(layout.table_path("images", part)):
            images[str(r["sample_id"])] = r
        for r in read_rows(layout.table_path("rois", part)):
            if str(r.get("status") or "ok") == "ok":
                rois.setdefault(str(r["sample_id"]), []).append(r)
        for r in read_rows(layout.table_path("image_facts", part)):  # written by the rois stage
            if str(r.get("status") or "ok") == "ok":
                facts[str(r["sample_id"])] = r
    return ShardInputs(triplets=triplets, images_by_id=images, rois_by_id=rois, sources=present,
                       image_facts_by_id=facts)
