"""COCO instance JSON for the ROIs: boxes in pixels, masks as compressed RLE, one dataset-wide category map.

Dataset layout: ``coco/annotations_<split>.json`` per split and ``coco/images/<key>.png``, with every
``file_name`` relative to the ``coco/`` folder. Image and annotation ids are unique across the split
files and every file carries the whole category map (``exports/categories.json``), so the files merge
without remapping. Each annotation also keeps the ROI's origin (ground truth or expert model with its
version) and confidence, so nobody has to guess where a mask came from; each image keeps its sample id,
split, source and licence (``licenses`` lists the sources' licences).

A shard's part holds the same images and annotations per split with category *names*; ids are given
when the parts are merged (the one place that sees every label).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from medtrinity_assets.export.categories import CategoryMap
from medtrinity_assets.export.llava import image_ref
from medtrinity_assets.export.samples import ExportSample
from medtrinity_assets.quality.splits import SPLITS
from medtrinity_assets.storage import atomic_write_text

INFO = {"description": "MedTrinity-style image-ROI-description dataset: regions of interest", "version": "1.0"}


def _bbox_pixels(bbox: list[float], width: int, height: int) -> list[float]:
    x0, y0, x1, y1 = bbox
    return [round(x0 * width, 2), round(y0 * height, 2), round((x1 - x0) * width, 2), round((y1 - y0) * height, 2)]


def part_records(samples: list[ExportSample]) -> dict[str, dict[str, list[dict]]]:
    """split -> {"images": [...], "annotations": [...]}, annotations naming their category and image by sample id."""
    from pycocotools import mask as mask_utils

    out: dict[str, dict[str, list[dict]]] = {split: {"images": [], "annotations": []} for split in SPLITS}
    for s in sorted(samples, key=lambda s: s.id):
        rec = out.setdefault(s.split, {"images": [], "annotations": []})
        rec["images"].append({"file_name": image_ref(s), "width": s.width, "height": s.height, "sample_id": s.id,
                              "split": s.split, "source": s.source, "licence": s.licence})
        for r in s.rois:
            if not r.get("label") or len(r.get("bbox") or []) != 4:
                continue
            ann = {"sample_id": s.id, "category": r["label"], "bbox": _bbox_pixels(r["bbox"], s.width, s.height),
                   "iscrowd": 0, "roi_id": r.get("roi_id", ""), "origin": r.get("origin", ""),
                   "confidence": r.get("confidence")}
            rle = r.get("mask_rle")
            if rle:
                ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"]}
                ann["area"] = float(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}))
            else:  # a box-only ROI (COCO-box sources): the box as a polygon
                x, y, w, h = ann["bbox"]
                ann["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
                ann["area"] = float(w * h)
            rec["annotations"].append(ann)
    return out


def write_part(samples: list[ExportSample], folder: Path, shard: str) -> dict[str, int]:
    counts = {}
    for split, rec in part_records(samples).items():
        atomic_write_text(Path(folder) / f"{split}.json", json.dumps(rec, ensure_ascii=False, sort_keys=True))
        counts[f"{split}.json"] = len(rec["images"])
    return counts


def merge_parts(part_folders: Iterable[Path], folder: Path, categories: CategoryMap) -> dict[str, int]:
    """``annotations_<split>.json``: ids numbered over the whole dataset (images by sample id, annotations
    by image then ROI id), so no two split files share an image or annotation id."""
    folders = list(part_folders)
    by_split: dict[str, dict[str, list[dict]]] = {}
    for split in SPLITS:
        images, anns = [], []
        for p in folders:
            f = p / f"{split}.json"
            if f.is_file():
                rec = json.loads(f.read_text(encoding="utf-8"))
                images += rec["images"]
                anns += rec["annotations"]
        by_split[split] = {"images": images, "annotations": anns}
    all_images = sorted((img for rec in by_split.values() for img in rec["images"]), key=lambda i: i["sample_id"])
    image_id = {img["sample_id"]: n for n, img in enumerate(all_images, 1)}
    licences = sorted({img.get("licence") or "unknown" for img in all_images})
    licence_id = {name: n for n, name in enumerate(licences, 1)}
    all_anns = sorted((a for rec in by_split.values() for a in rec["annotations"]),
                      key=lambda a: (image_id[a["sample_id"]], a.get("roi_id") or "", a["category"]))
    ann_id = {id(a): n for n, a in enumerate(all_anns, 1)}
    cat_id = categories.id_of
    counts = {}
    for split, rec in by_split.items():
        images = [{"id": image_id[i["sample_id"]], "license": licence_id[i.get("licence") or "unknown"], **i}
                  for i in sorted(rec["images"], key=lambda i: i["sample_id"])]
        annotations = []
        for a in sorted(rec["annotations"], key=lambda a: ann_id[id(a)]):
            if a["category"] not in cat_id:
                raise KeyError(f"category {a['category']!r} is not in the category map; merge the category map first")
            ann = {k: v for k, v in a.items() if k not in ("sample_id", "category")}
            annotations.append({"id": ann_id[id(a)], "image_id": image_id[a["sample_id"]],
                                "category_id": cat_id[a["category"]], **ann})
        coco = {"info": {**INFO, "split": split}, "licenses": [{"id": i, "name": n} for n, i in licence_id.items()],
                "images": images, "annotations": annotations, "categories": categories.coco_categories()}
        atomic_write_text(Path(folder) / f"annotations_{split}.json", json.dumps(coco, ensure_ascii=False))
        counts[f"annotations_{split}.json"] = len(images)
        counts[f"annotations_{split}.json:annotations"] = len(annotations)
    return counts

