"""One category map for the whole dataset: ROI label -> stable integer id, written once and only extended.

Ids are given when a label is first exported (new labels of one run in sorted order, after every id
already given) and never change or disappear afterwards, so COCO files of different splits, or of
two releases of the same data root, merge without remapping. The map lives in
``exports/categories.json``, outside the per-format folders that each run swaps in whole, and every
COCO file carries all of it (even categories with no annotation in that split).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from medtrinity_assets.storage import atomic_write_text

FILE_NAME = "categories.json"
KINDS = ("anatomy", "finding")


@dataclass
class CategoryMap:
    """Ordered categories: ``{"id", "name", "kind"}`` (kind: anatomy | finding)."""

    categories: list[dict] = field(default_factory=list)

    @property
    def id_of(self) -> dict[str, int]:
        return {c["name"]: int(c["id"]) for c in self.categories}

    def extended(self, labels: Mapping[str, str]) -> tuple[CategoryMap, list[str]]:
        """A map holding every known category plus ``labels`` (name -> kind) not yet in it; and the new names."""
        known = self.id_of
        new = sorted(name for name in labels if name and name not in known)
        next_id = max(known.values(), default=0) + 1
        cats = [dict(c) for c in self.categories]
        for n, name in enumerate(new):
            kind = labels[name] if labels[name] in KINDS else "finding"
            cats.append({"id": next_id + n, "name": name, "kind": kind})
        return CategoryMap(cats), new

    def coco_categories(self) -> list[dict]:
        return [{"id": int(c["id"]), "name": c["name"], "supercategory": c["kind"]} for c in self.categories]

    def to_json(self) -> str:
        return json.dumps({"categories": self.categories}, indent=1, ensure_ascii=False) + "\n"


def load(path: Path) -> CategoryMap:
    """The map written by an earlier run; an empty map when there is none yet."""
    path = Path(path)
    if not path.is_file():
        return CategoryMap()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cats = [{"id": int(c["id"]), "name": str(c["name"]), "kind": str(c.get("kind") or "finding")}
                for c in data["categories"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a category map ({exc}); restore it from the previous release or delete it "
                         "to number the categories anew (ids of earlier releases will then differ)") from exc
    ids = [c["id"] for c in cats]
    if len(set(ids)) != len(ids) or len({c["name"] for c in cats}) != len(cats):
        raise ValueError(f"{path}: duplicate category ids or names; restore it from the previous release")
    return CategoryMap(cats)


def update(path: Path, labels: Mapping[str, str]) -> tuple[CategoryMap, list[str]]:
    """Extend the map at ``path`` with ``labels`` (name -> kind), writing it only when it grew."""
    current = load(path)
    extended, new = current.extended(labels)
    if new or not Path(path).is_file():
        atomic_write_text(Path(path), extended.to_json())
    return extended, new


def labels_of(rois: Iterable[Mapping]) -> dict[str, str]:
    """name -> kind of every labelled ROI (the first kind seen wins)."""
    out: dict[str, str] = {}
    for r in rois:
        if r.get("label"):
            out.setdefault(str(r["label"]), str(r.get("kind") or "finding"))
    return out
