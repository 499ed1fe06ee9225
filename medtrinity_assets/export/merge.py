"""The dataset as users get it: every format's per-split files, merged from the shard parts.

Why parts and a merge. Shards are the unit of work (a shard's export reruns alone when its triplets
change, shards export in parallel, a blocking check stops one shard), but a user trains on splits:
``llava/train.json`` must hold the training subjects of every shard and nothing else. So each
``export_<format>[shard]`` partition writes a part per split, and the unpartitioned ``dataset_exports``
asset merges them: Parquet files and tars are linked unchanged (they are already per split, and a
reader streams files, so rewriting them would only copy bytes), JSON files are concatenated in id
order, COCO ids are numbered over the whole dataset, VQA yes/no answers are balanced per question
type and split, category ids come from the one dataset-wide map, and each image of the loose-file
formats is a hard link to its blob. Each format folder is written beside its final place, sealed with
``SHA256SUMS`` and swapped in whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtrinity_assets.export import categories as category_map
from medtrinity_assets.export import coco, hf_parquet, llava, vqa, webdataset
from medtrinity_assets.export.build import EMBEDDED_IMAGES, FORMATS, PART_MANIFEST, dataset_dir, part_dir
from medtrinity_assets.export.images import Placed, place_all
from medtrinity_assets.export.sha256sums import verify_sha256sums
from medtrinity_assets.export.staging import staged_dir
from medtrinity_assets.storage import DataLayout

LINKED_FILES = {"hf": hf_parquet.dataset_files, "webdataset": webdataset.dataset_files}


class PartProblem(RuntimeError):
    """A part that cannot be merged (unsealed, changed since it was written, unreadable manifest)."""


@dataclass
class Part:
    fmt: str
    shard: str
    folder: Path
    manifest: dict[str, Any]


@dataclass
class FormatMerge:
    fmt: str
    folder: Path
    shards: list[str]
    missing_shards: list[str]
    files: dict[str, int]
    samples: dict[str, int]  # per split
    images: Placed = field(default_factory=Placed)


@dataclass
class DatasetMerge:
    formats: dict[str, FormatMerge]
    categories: category_map.CategoryMap
    new_categories: list[str]


def categories_path(layout: DataLayout) -> Path:
    return layout.exports / category_map.FILE_NAME


def read_parts(layout: DataLayout, fmt: str, shards: Iterable[str]) -> tuple[list[Part], list[str]]:
    """The sealed parts of ``fmt`` for ``shards`` and the shards that have none yet."""
    parts, missing = [], []
    for shard in shards:
        folder = part_dir(layout, fmt, shard)
        if not folder.is_dir():
            missing.append(shard)
            continue
        sums = verify_sha256sums(folder)
        if not sums.ok:
            raise PartProblem(f"{folder}: {sums.error or 'SHA256SUMS does not verify'} (mismatched {sums.mismatched}, "
                              f"missing {sums.missing}, unlisted {sums.unlisted}); rerun export_{fmt}[{shard}]")
        try:
            manifest = json.loads((folder / PART_MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PartProblem(f"{folder / PART_MANIFEST}: unreadable ({exc}); rerun export_{fmt}[{shard}]") from exc
        parts.append(Part(fmt, shard, folder, manifest))
    return parts, missing


def _merge_format(layout: DataLayout, fmt: str, parts: list[Part], missing: list[str],
                  cats: category_map.CategoryMap) -> FormatMerge:
    final = dataset_dir(layout, fmt)
    folders = [p.folder for p in parts]
    with staged_dir(final) as tmp:
        placed = Placed()
        if fmt in LINKED_FILES:
            files: dict[str, int] = {}
            for p in parts:
                linked = LINKED_FILES[fmt](p.folder, p.shard)
                placed.add(place_all(linked, tmp))
                files.update(dict.fromkeys(linked, 1))
        elif fmt == "llava":
            files = llava.merge_parts(folders, tmp)
        elif fmt == "coco":
            files = coco.merge_parts(folders, tmp, cats)
        elif fmt == "vqa":
            files = vqa.merge_parts(folders, tmp)
        else:
            raise ValueError(f"unknown export format {fmt!r}; known: {FORMATS}")
        if fmt not in EMBEDDED_IMAGES:
            images = {rel: layout.resolve(blob) for p in parts for rel, blob in p.manifest.get("images", {}).items()}
            placed = place_all(images, tmp)
    samples: dict[str, int] = {}
    for p in parts:
        for split, n in p.manifest.get("samples", {}).items():
            samples[split] = samples.get(split, 0) + int(n)
    return FormatMerge(fmt=fmt, folder=final, shards=[p.shard for p in parts], missing_shards=missing, files=files,
                       samples=dict(sorted(samples.items())), images=placed)


def merge_dataset(layout: DataLayout, shards: Iterable[str], formats: Iterable[str] = FORMATS) -> DatasetMerge:
    """Merge the parts of every format that has any into ``exports/<format>/``; extend the category map first."""
    shards = list(shards)
    parts = {fmt: read_parts(layout, fmt, shards) for fmt in formats}
    labels: dict[str, str] = {}
    for found, _ in parts.values():
        for p in found:
            for name, kind in p.manifest.get("labels", {}).items():
                labels.setdefault(name, kind)
    cats, new = category_map.update(categories_path(layout), labels)
    merged = {fmt: _merge_format(layout, fmt, found, missing, cats)
              for fmt, (found, missing) in parts.items() if found}
    return DatasetMerge(formats=merged, categories=cats, new_categories=new)
