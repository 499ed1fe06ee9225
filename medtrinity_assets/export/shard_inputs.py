"""Read what one export shard needs from the tables, and the global exclusions (leaks, duplicates).

Tables are one Parquet file per (source, shard) partition; a missing file reads as no rows (a source
whose shard holds no subject). Duplicates and leaks are decided over *all* images, so every shard's
export agrees on which member of a near-duplicate group represents it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from medtrinity_assets.quality.dedup import DedupResult, find_duplicates
from medtrinity_assets.quality.leakage import LeakHit, find_leaks
from medtrinity_assets.quality.pixels import pixel_confirmer
from medtrinity_assets.storage import DataLayout

INDEX_COLUMNS = ("sample_id", "source", "phash", "split", "subject_key", "volume_ref", "shard", "image_path")
DEFAULT_DEDUP_HAMMING = 4
DEFAULT_DEDUP_MAX_PIXEL_MAD = 0.005  # 32x32 thumbnails, 0..1 grey: re-encoded/rescaled copies only
DEFAULT_LEAKAGE_HAMMING = 4


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


def exclusions(index: list[dict[str, Any]], eval_hashes: list[int], quality: dict[str, Any],
               root: Path | None = None) -> Exclusions:
    """Leaks and near-duplicate groups. With ``root`` (the data_root), phash matches are confirmed on
    the pixels (``quality.dedup_max_pixel_mad``; set it to null to trust the hash alone)."""
    leaks = find_leaks(index, eval_hashes, threshold=int(quality.get("leakage_hamming", DEFAULT_LEAKAGE_HAMMING)))
    leaked = {h.sample_id for h in leaks}
    max_mad = quality.get("dedup_max_pixel_mad", DEFAULT_DEDUP_MAX_PIXEL_MAD)
    confirm = pixel_confirmer(root, float(max_mad)) if root is not None and max_mad is not None else None
    dedup = find_duplicates(
        index,
        threshold=int(quality.get("dedup_hamming", DEFAULT_DEDUP_HAMMING)),
        same_volume_ok=bool(quality.get("dedup_ignore_same_volume", True)),
        avoid_as_representative=leaked,
        confirm=confirm,
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
