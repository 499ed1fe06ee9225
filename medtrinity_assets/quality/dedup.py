"""Near-duplicate images within and across sources, by perceptual hash.

The same picture often reaches a corpus twice (a public dataset re-packaged by another). Duplicates are
grouped around a representative (an image joins a group when it is within ``threshold`` bits of the
group's representative and, optionally, its pixels confirm it); each group is exported once, by its
representative, carrying the provenance of every member. Slices of one volume are not
duplicates of each other (neighbouring slices look alike by nature), so pairs sharing a
``volume_ref`` are ignored unless asked otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from medtrinity_assets.quality.phash import HashIndex, parse_hash


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
    confirm: Callable[[Mapping[str, Any], Mapping[str, Any]], bool] | None = None,
) -> DedupResult:
    """Group images whose phash is within ``threshold`` bits of their group's representative.

    Leader clustering, not single linkage: an image joins the first representative (in preference
    order) that it is close to, so chains of slightly different images never merge into one group.
    ``confirm(representative_row, row)`` can veto a phash match on the pixels (medical images of one
    anatomy often share a perceptual hash without being the same picture).
    ``rows`` need ``sample_id``, ``phash`` and preferably ``source``, ``split``, ``volume_ref``.
    """
    excluded = set(avoid_as_representative)
    rows = sorted((dict(r) for r in rows), key=lambda r: _rank(r, excluded))
    index = HashIndex(threshold)
    leaders: list[tuple[dict[str, Any], int]] = []  # (row, hash) by index position
    members: dict[int, list[tuple[dict[str, Any], int]]] = {}
    bad: list[str] = []
    for r in rows:
        try:
            h = parse_hash(str(r.get("phash") or ""))
        except ValueError:
            bad.append(str(r["sample_id"]))
            continue
        joined = False
        for k, d in sorted(index.query(h), key=lambda kd: (kd[1], kd[0])):
            lead = leaders[k][0]
            vol = lead.get("volume_ref") or ""
            if same_volume_ok and vol and vol == (r.get("volume_ref") or "") and lead.get("source") == r.get("source"):
                continue  # slices of one volume are alike by nature, not duplicates
            if confirm is not None and not confirm(lead, r):
                continue
            members[k].append((r, d))
            joined = True
            break
        if not joined:
            k = index.add(h)
            leaders.append((r, h))
            members[k] = [(r, 0)]
    groups = []
    for ms in members.values():
        if len(ms) < 2:
            continue
        group = [DupMember(sample_id=str(m["sample_id"]), source=str(m.get("source") or ""),
                           split=str(m.get("split") or ""), distance=d) for m, d in ms]
        groups.append(DupGroup(group_id=group[0].sample_id, representative=group[0].sample_id, members=group))
    groups.sort(key=lambda g: g.group_id)
    return DedupResult(groups=groups, n_images=len(rows), bad_hashes=bad)
