"""Read what one export shard needs from the tables, and the global exclusions (leaks, duplicates).

Tables are one Parquet file per (source, shard) partition; a missing file reads as no rows (a source
whose shard holds no subject). Duplicates and leaks are decided over *all* images, so every shard's
export agrees on which member of a near-duplicate group represents it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pyarrow.parquet as pq

from medtrinity_assets.quality.dedup import DedupResult, find_duplicates
from medtrinity_assets.quality.leakage import LeakHit, find_leaks
from medtrinity_assets.storage import DataLayout

INDEX_COLUMNS = ("sample_id", "source", "phash", "split", "subject_key", "volume_ref", "shard")


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


def image_index(layout: DataLayout, sources: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The few image columns dedup, leakage and split checks need, for every partition."""
    wanted = set(sources) if sources is not None else None
    rows: list[dict[str, Any]] = []
    for path in table_files(layout, "images"):
        for r in read_rows(path, INDEX_COLUMNS):
            if wanted is None or r.get("source") in wanted:
                rows.append(r)
    return rows


@dataclass
class Exclusions:
    leaks: list[LeakHit]
    dedup: DedupResult
    leaked: set[str] = field(default_factory=set)

    def group_members(self) -> dict[str, list[dict[str, Any]]]:
        """representative -> provenance of every member of its group."""
        return {
            g.representative: [
                {"sample_id": m.sample_id, "source": m.source, "split": m.split, "distance": m.distance}
                for m in g.members
            ]
            for g in self.dedup.groups
        }


def exclusions(index: list[dict[str, Any]], eval_hashes: list[int], quality: dict[str, Any]) -> Exclusions:
    leaks = find_leaks(index, eval_hashes, threshold=int(quality.get("leakage_hamming", 4)))
    leaked = {h.sample_id for h in leaks}
    dedup = find_duplicates(
        index,
        threshold=int(quality.get("dedup_hamming", 4)),
        same_volume_ok=bool(quality.get("dedup_ignore_same_volume", True)),
        avoid_as_representative=leaked,
    )
    return Exclusions(leaks=leaks, dedup=dedup, leaked=leaked)


@dataclass
class ShardInputs:
    triplets: list[dict[str, Any]]
    images_by_id: dict[str, dict[str, Any]]
    rois_by_id: dict[str, list[dict[str, Any]]]
    sources: list[str]


def load_shard(layout: DataLayout, shard: str, sources: Iterable[str]) -> ShardInputs:
    triplets: list[dict[str, Any]] = []
    images: dict[str, dict[str, Any]] = {}
    rois: dict[str, list[dict[str, Any]]] = {}
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
    return ShardInputs(triplets=triplets, images_by_id=images, rois_by_id=rois, sources=present)
