"""Near-duplicate images within and across sources, by perceptual hash.

The same picture often reaches a corpus twice (a public dataset re-packaged by another). Duplicates are
grouped (connected components of the "within ``threshold`` bits" relation); each group is exported
once, by its representative, carrying the provenance of every member. Slices of one volume are not
duplicates of each other (neighbouring slices look alike by nature), so pairs sharing a
``volume_ref`` are ignored unless asked otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from medtrinity_assets.quality.phash import near_pairs, parse_hash


@dataclass(frozen=True)
class DupMember:
    sample_id: str
    source: str
    split: str
    distance: int  # Hamming distance to the representative


@dataclass
class DupGroup:
    group_id: str  # the representative's sample_id
    representative: str
    members: list[DupMember]  # every member, representative first

    @property
    def sources(self) -> list[str]:
        return sorted({m.source for m in self.members})

    @property
    def cross_source(self) -> bool:
        return len(self.sources) > 1

    @property
    def cross_split(self) -> bool:
        return len({m.split for m in self.members if m.split}) > 1


@dataclass
class DedupResult:
    groups: list[DupGroup]
    n_images: int
    bad_hashes: list[str]  # sample_ids whose phash could not be parsed

    def representative_of(self) -> dict[str, str]:
        """sample_id -> its group's representative (only for members of a group)."""
        return {m.sample_id: g.representative for g in self.groups for m in g.members}

    def group_of(self) -> dict[str, DupGroup]:
        return {m.sample_id: g for g in self.groups for m in g.members}

    @property
    def n_duplicates(self) -> int:
        """Images that will not be exported because another member represents them."""
        return sum(len(g.members) - 1 for g in self.groups)

    def summary(self) -> dict[str, int]:
        return {
            "images": self.n_images,
            "duplicate_groups": len(self.groups),
            "duplicate_images": self.n_duplicates,
            "cross_source_groups": sum(g.cross_source for g in self.groups),
            "cross_split_groups": sum(g.cross_split for g in self.groups),
            "unparseable_hashes": len(self.bad_hashes),
        }


def _rank(row: Mapping[str, Any], excluded: set[str]) -> tuple:
    """Representative preference: not excluded (e.g. leaked), then stable by source and id."""
    return (str(row["sample_id"]) in excluded, str(row.get("source") or ""), str(row["sample_id"]))


def find_duplicates(
    rows: Iterable[Mapping[str, Any]],
    threshold: int = 4,
    same_volume_ok: bool = True,
    avoid_as_representative: Iterable[str] = (),
) -> DedupResult:
    """Group images whose phash differ by at most ``threshold`` bits.

    ``rows`` need ``sample_id``, ``phash`` and preferably ``source``, ``split``, ``volume_ref``.
    """
    rows = [dict(r) for r in rows]
    rows.sort(key=lambda r: (str(r.get("source") or ""), str(r["sample_id"])))
    valid, hashes, bad = [], [], []
    for r in rows:
        try:
            hashes.append(parse_hash(str(r.get("phash") or "")))
            valid.append(r)
        except ValueError:
            bad.append(str(r["sample_id"]))
    parent = list(range(len(valid)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in near_pairs(hashes, threshold):
        vi, vj = valid[i].get("volume_ref") or "", valid[j].get("volume_ref") or ""
        if same_volume_ok and vi and vi == vj and valid[i].get("source") == valid[j].get("source"):
            continue
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    comps: dict[int, list[int]] = {}
    for i in range(len(valid)):
        comps.setdefault(find(i), []).append(i)
    excluded = set(avoid_as_representative)
    groups = []
    for idxs in comps.values():
        if len(idxs) < 2:
            continue
        idxs.sort(key=lambda k: _rank(valid[k], excluded))
        rep = idxs[0]
        members = [
            DupMember(
                sample_id=str(valid[k]["sample_id"]),
                source=str(valid[k].get("source") or ""),
                split=str(valid[k].get("split") or ""),
                distance=(hashes[k] ^ hashes[rep]).bit_count(),
            )
            for k in idxs
        ]
        groups.append(DupGroup(group_id=members[0].sample_id, representative=members[0].sample_id, members=members))
    groups.sort(key=lambda g: g.group_id)
    return DedupResult(groups=groups, n_images=len(rows), bad_hashes=bad)
