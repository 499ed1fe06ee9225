"""The dataset-wide exclusions: near-duplicate groups and evaluation-set leaks, computed once and read back.

``compute`` runs over every image of the dataset (the ``near_duplicates`` asset calls it and writes the
``near_duplicates`` and ``eval_leaks`` tables); ``read`` rebuilds the same result from those tables, so
the exports and the dataset card use the asset's answer instead of recomputing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from medtrinity_assets.config import QualitySection
from medtrinity_assets.quality.dedup import DedupResult, DupGroup, DupMember, find_duplicates
from medtrinity_assets.quality.leakage import LeakHit, find_leaks
from medtrinity_assets.quality.pixels import pixel_confirmer
from medtrinity_assets.storage import DataLayout

INDEX_COLUMNS = ("sample_id", "source", "phash", "split", "subject_key", "volume_ref", "shard", "image_path")
DUPLICATES_TABLE = "near_duplicates"
LEAKS_TABLE = "eval_leaks"


class NotMaterialised(FileNotFoundError):
    """The near_duplicates asset has not written its tables yet."""


def _rows(path: Path, columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    cols = [c for c in columns if c in names] if columns is not None else None
    return pf.read(columns=cols).to_pylist()


def image_index(layout: DataLayout, sources: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The few image columns dedup, leakage and split checks need, for every partition."""
    wanted = set(sources) if sources is not None else None
    base = layout.root / "tables" / "images"
    rows: list[dict[str, Any]] = []
    for path in sorted(base.rglob("*.parquet")) if base.exists() else []:
        for r in _rows(path, INDEX_COLUMNS):
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

    def duplicate_rows(self) -> list[dict[str, Any]]:
        """Rows of the ``near_duplicates`` table (tables.DUPLICATE_SCHEMA), representative first per group."""
        return [
            {"group_id": g.group_id, "sample_id": m.sample_id, "source": m.source, "split": m.split,
             "is_representative": m.sample_id == g.representative, "distance": m.distance,
             "cross_source": g.cross_source, "cross_split": g.cross_split}
            for g in self.dedup.groups for m in g.members
        ]

    def leak_rows(self) -> list[dict[str, Any]]:
        """Rows of the ``eval_leaks`` table (tables.LEAK_SCHEMA)."""
        return [{"sample_id": h.sample_id, "source": h.source, "distance": h.distance} for h in self.leaks]


def compute(index: list[dict[str, Any]], eval_hashes: list[int], quality: QualitySection,
            root: Path | None = None) -> Exclusions:
    """Leaks and near-duplicate groups over ``index`` (every image). With ``root`` (the data_root), phash
    matches are confirmed on the pixels (``quality.dedup_max_pixel_mad``; null trusts the hash alone)."""
    leaks = find_leaks(index, eval_hashes, threshold=quality.leakage_hamming)
    leaked = {h.sample_id for h in leaks}
    max_mad = quality.dedup_max_pixel_mad
    confirm = pixel_confirmer(root, max_mad) if root is not None and max_mad is not None else None
    dedup = find_duplicates(
        index,
        threshold=quality.dedup_hamming,
        same_volume_ok=quality.dedup_ignore_same_volume,
        avoid_as_representative=leaked,
        confirm=confirm,
    )
    return Exclusions(leaks=leaks, dedup=dedup, leaked=leaked)


def read(layout: DataLayout, n_images: int = -1) -> Exclusions:
    """The ``near_duplicates`` asset's result, from its tables (``n_images``: the dataset's image count,
    which the tables do not hold; -1 when the caller does not need it)."""
    dup_path, leak_path = layout.table_path(DUPLICATES_TABLE), layout.table_path(LEAKS_TABLE)
    missing = [p for p in (dup_path, leak_path) if not p.is_file()]
    if missing:
        raise NotMaterialised(f"{missing[0]} is missing: materialise the near_duplicates asset "
                              "(dataset-wide duplicates and leaks) before the exports and the dataset card")
    groups: dict[str, list[DupMember]] = {}
    for r in _rows(dup_path):
        member = DupMember(sample_id=str(r["sample_id"]), source=str(r.get("source") or ""),
                           split=str(r.get("split") or ""), distance=int(r.get("distance") or 0))
        members = groups.setdefault(str(r["group_id"]), [])
        if r.get("is_representative"):
            members.insert(0, member)
        else:
            members.append(member)
    dedup = DedupResult(groups=[DupGroup(group_id=gid, representative=ms[0].sample_id, members=ms)
                                for gid, ms in sorted(groups.items())],
                        n_images=n_images, bad_hashes=[])
    leaks = [LeakHit(str(r["sample_id"]), str(r.get("source") or ""), int(r.get("distance") or 0))
             for r in _rows(leak_path)]
    return Exclusions(leaks=leaks, dedup=dedup, leaked={h.sample_id for h in leaks})
