"""COCO instance JSON for the ROIs: boxes in pixels, masks as compressed RLE, one category per label.

Readable by ``pycocotools.coco.COCO``; images are copied under ``images/`` beside ``annotations.json``.
Each annotation also keeps the ROI's origin (ground truth or expert model with its version) and
confidence, so nobody has to guess where a mask came from.
"""

from __future__ import annotations

import json
from pathlib import Path

from medtrinity_assets.export.llava import write_images
from medtrinity_assets.export.samples import ExportSample
from medtrinity_assets.storage import atomic_write_text


def _bbox_pixels(bbox: list[float], width: int, height: int) -> list[float]:
    x0, y0, x1, y1 = bbox
    return [round(x0 * width, 2), round(y0 * height, 2), round((x1 - x0) * width, 2), round((y1 - y0) * height, 2)]


def build_coco(samples: list[ExportSample]) -> dict:
    from pycocotools import mask as mask_utils

    labels = sorted({r["label"] for s in samples for r in s.rois if r.get("label")})
    cat_id = {lab: n + 1 for n, lab in enumerate(labels)}
    images, annotations = [], []
    for n, s in enumerate(sorted(samples, key=lambda s: s.id), 1):
        images.append({"id": n, "file_name": f"images/{s.key}.png", "width": s.width, "height": s.height,
                       "sample_id": s.id, "split": s.split, "source": s.source, "licence": s.licence})
        for r in s.rois:
            if not r.get("label") or len(r.get("bbox") or []) != 4:
                continue
            ann = {"id": len(annotations) + 1, "image_id": n, "category_id": cat_id[r["label"]],
                   "bbox": _bbox_pixels(r["bbox"], s.width, s.height), "iscrowd": 0,
                   "roi_id": r.get("roi_id", ""), "origin": r.get("origin", ""), "confidence": r.get("confidence")}
            rle = r.get("mask_rle")
            if rle:
                ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"]}
                ann["area"] = float(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}))
            else:  # a box-only ROI (COCO-box sources): the box as a polygon
                x, y, w, h = ann["bbox"]
                ann["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
                ann["area"] = float(w * h)
            annotations.append(ann)
    return {
        "info": {"description": "MedTrinity-style ROIs", "version": "1.0"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": lab, "supercategory": "roi"} for lab, i in cat_id.items()],
    }


def write_coco(samples: list[ExportSample], folder: Path) -> dict[str, int]:
    folder = Path(folder)
    write_images(samples, folder)
    coco = build_coco(samples)
    atomic_write_text(folder / "annotations.json", json.dumps(coco, ensure_ascii=False))
    return {"images": len(coco["images"]), "annotations": len(coco["annotations"]),
            "categories": len(coco["categories"])}
