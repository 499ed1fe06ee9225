"""A small dataset for the export tests: two sources, two shards, subjects in every split, ground-truth
annotations (so absence is known), a ROI label per shard that the other shard lacks (so per-shard
numbering would disagree), and the near_duplicates asset's tables written the way the asset writes them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from medtrinity_assets.config import QualitySection
from medtrinity_assets.deid import split_of
from medtrinity_assets.export.build import FORMATS, export_part
from medtrinity_assets.export.merge import DatasetMerge, merge_dataset
from medtrinity_assets.quality import near_duplicates as nd
from medtrinity_assets.quality.leakage import load_eval_hashes
from medtrinity_assets.quality.splits import SPLITS
from medtrinity_assets.storage import DataLayout, rows_to_table, write_table
from medtrinity_assets.tables import DUPLICATE_SCHEMA, LEAK_SCHEMA
from medtrinity_assets_tests.support.quality import image_row, roi_row, triplet_row, write_partition

QUALITY = QualitySection(dedup_hamming=4, leakage_hamming=0)
LABEL_NAMES = {"1": "kidney", "2": "liver", "10": "tumour", "11": "cyst"}  # the sources' label map


def write_near_duplicates(layout: DataLayout, quality: QualitySection | None = None, eval_hashes: Path | None = None) -> nd.Exclusions:
    """What the near_duplicates asset does: compute over every image, write its two tables; returns them as
    the exports read them back."""
    excl = nd.compute(nd.image_index(layout), load_eval_hashes(eval_hashes), quality or QUALITY, root=layout.root)
    write_table(layout.table_path(nd.DUPLICATES_TABLE), rows_to_table(excl.duplicate_rows(), DUPLICATE_SCHEMA))
    write_table(layout.table_path(nd.LEAKS_TABLE), rows_to_table(excl.leak_rows(), LEAK_SCHEMA))
    return nd.read(layout)


def subjects_per_split(prefix: str, per_split: int) -> list[str]:
    """Subject keys, ``per_split`` of each split (the split is a hash of the key, so keys are searched)."""
    found: dict[str, list[str]] = {s: [] for s in SPLITS}
    i = 0
    while any(len(v) < per_split for v in found.values()):
        key = f"sub-{prefix}-{i}"
        if len(found[split_of(key)]) < per_split:
            found[split_of(key)].append(key)
        i += 1
    return [k for s in SPLITS for k in found[s]]


def _finding(sample_id: str, source: str, shard: str, label: str, side: str, bbox, n: int, diameter: float) -> dict:
    r = roi_row(sample_id, source, label=label, side=side, bbox=bbox, region="kidney", n=n, shard=shard)
    r["equivalent_diameter_mm"] = diameter
    r["relations_json"] = json.dumps({"inside": ["kidney"], "overlaps": [], "adjacent": ["liver"],
                                      "nearest_organ": "kidney", "distance_to_organ_edge_mm": 2.0,
                                      "distance_unit": "mm", "other_lesions": [], "n_lesions": 1})
    return r


def _anatomy(sample_id: str, source: str, shard: str, label: str, bbox, n: int) -> dict:
    r = roi_row(sample_id, source, label=label, side="right", bbox=bbox, kind="anatomy", region="", n=n, shard=shard)
    r["relations_json"] = json.dumps({"inside": [], "overlaps": [], "adjacent": [], "nearest_organ": None,
                                      "distance_unit": "mm"})
    return r


def build_dataset(layout: DataLayout, sources: Iterable[str] = ("src_a", "src_b"), shards: Iterable[str] = ("s00", "s01"),
                  per_split: int = 2, modality: str = "CT") -> dict[str, str]:
    """Write images, ROIs and triplets for every (source, shard); returns sample_id -> subject_key."""
    subject_of: dict[str, str] = {}
    seed = 0
    for source in sources:
        for shard in shards:
            images, rois, triplets = [], [], []
            finding = "tumour" if shard == "s00" else "cyst"  # each shard uses a label the other lacks
            for subject in subjects_per_split(f"{source}-{shard}", per_split):
                for k in range(2):  # two slices per subject
                    sid = f"{subject}-{k}"
                    seed += 1
                    img = image_row(layout, sid, source, subject, shard=shard, seed=seed, modality=modality)
                    img["gt_mask_path"] = img["image_path"]  # annotated (a label map covers the slice)
                    img["gt_label_names_json"] = json.dumps(LABEL_NAMES)
                    img["labels"] = [finding]
                    r = [_anatomy(sid, source, shard, "kidney", (0.5, 0.3, 0.9, 0.8), 0)]
                    if k == 0:
                        r.append(_finding(sid, source, shard, finding, "left", (0.55, 0.4, 0.75, 0.6), 0, 12.0))
                    images.append(img)
                    rois += r
                    triplets.append(triplet_row(img, r))
                    subject_of[sid] = subject
            write_partition(layout, source, shard, images, rois, triplets)
    write_near_duplicates(layout)
    return subject_of


def export_dataset(layout: DataLayout, sources: Iterable[str] = ("src_a", "src_b"),
                   shards: Iterable[str] = ("s00", "s01")) -> DatasetMerge:
    """Every part of every format, then the merge (what the export assets and dataset_exports do)."""
    excl = nd.read(layout)
    shards = list(shards)
    for fmt in FORMATS:
        for shard in shards:
            export_part(layout, fmt, shard, list(sources), excl)
    return merge_dataset(layout, shards)
