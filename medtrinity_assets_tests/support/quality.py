"""Small real inputs for the quality and export tests: PNG images, COCO RLE masks and table rows in the
pipeline's schemas, written under a temporary data_root."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from medtrinity_assets.deid import split_of
from medtrinity_assets.storage import DataLayout, rows_to_table, write_table
from medtrinity_assets.tables import IMAGE_SCHEMA


def make_png(seed: int, size: int = 64) -> bytes:
    """A grey image with a seeded blob pattern (distinct seeds give distinct perceptual hashes)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size))
    for _ in range(4):
        cx, cy, r, v = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.08, 0.3), rng.uniform(0.3, 1)
        img += v * (((xx - cx) ** 2 + (yy - cy) ** 2) < r * r)
    img = (255 * img / max(img.max(), 1e-6)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def phash_of(png: bytes) -> str:
    import imagehash

    return str(imagehash.phash(Image.open(io.BytesIO(png))))


def box_rle(width: int, height: int, bbox: list[float]) -> dict:
    """COCO compressed RLE of the rectangle ``bbox`` (normalised xyxy)."""
    from pycocotools import mask as mask_utils

    m = np.zeros((height, width), dtype=np.uint8, order="F")
    x0, y0, x1, y1 = bbox
    m[int(y0 * height):int(np.ceil(y1 * height)), int(x0 * width):int(np.ceil(x1 * width))] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": [int(height), int(width)], "counts": rle["counts"].decode("ascii")}


def image_row(layout: DataLayout, sample_id: str, source: str, subject_key: str, shard: str = "s00",
              seed: int = 0, png: bytes | None = None, modality: str = "CT", organ: str = "abdomen",
              split: str | None = None, volume_ref: str = "") -> dict:
    png = png if png is not None else make_png(seed)
    rel, sha = layout.put_blob(png, ".png")
    return {
        "sample_id": sample_id, "source": source, "item_key": f"itm-{sample_id}", "subject_key": subject_key,
        "study_key": "", "series_key": "", "volume_ref": volume_ref, "rel_path": f"secret_dir/{sample_id}.nii.gz",
        "slice_index": 3, "n_slices": 8, "axis": "axial", "neighbour_slices": [2, 4], "modality": modality,
        "organ": organ, "disease": "", "labels": ["tumour"], "caption_in": None, "image_path": rel,
        "image_sha256": sha, "values_path": None, "width": 64, "height": 64, "orig_width": 64, "orig_height": 64,
        "pixel_spacing": [1.0, 1.0], "slice_thickness": 1.0, "col_toward": "L", "row_toward": "P",
        "window": "ct:abdomen(40/400)", "window_center": 40.0, "window_width": 400.0, "phash": phash_of(png),
        "gt_mask_path": None, "gt_label_names_json": None, "gt_boxes_json": None, "meta_json": "{}",
        "licence": "CC0-1.0", "split": split or split_of(subject_key), "shard": shard,
    }


def roi_row(sample_id: str, source: str, label: str = "tumour", side: str = "left", bbox=(0.55, 0.4, 0.75, 0.6),
            size_class: str = "small", intensity: str = "hypodense", region: str = "kidney",
            kind: str = "finding", n: int = 0, shard: str = "s00") -> dict:
    return {
        "sample_id": sample_id, "source": source, "shard": shard, "roi_id": f"roi-{sample_id}-{label}-{n}",
        "label": label, "kind": kind, "origin": "ground_truth", "confidence": 1.0, "component": n,
        "n_components": 1, "bbox": list(bbox), "mask_rle": box_rle(64, 64, list(bbox)),
        "area_pixels": 100, "area_fraction": (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]), "area_mm2": 100.0,
        "centroid": [(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2], "side": side,
        "vertical_position": "middle", "ap_position": "central", "region": region, "size_class": size_class,
        "equivalent_diameter_mm": 11.0, "intensity": intensity, "contrast": -30.0, "contrast_unit": "HU",
        "mean_value": 10.0, "texture": "homogeneous", "texture_score": 1.0, "glcm_homogeneity": 0.5,
        "shape": "round", "circularity": 0.9, "solidity": 0.95, "margin": "well_defined", "edge_sharpness": 1.0,
        "relations_json": json.dumps({"inside": [region], "overlaps": [], "adjacent": [], "nearest_organ": region,
                                      "distance_to_organ_edge_mm": 2.0, "distance_unit": "mm"}),
        "status": "ok", "error": "",
    }


GOOD_DESCRIPTION = (
    "Axial CT image of the abdomen. A small hypodense tumour lies in the left kidney, round and well defined. "
    "It is homogeneous and sits inside the kidney."
)
GOOD_ATTRIBUTES = {
    "modality": "CT (computed tomography), axial slice",
    "organ": "abdomen: kidney",
    "roi_location": "left kidney, middle of the image",
    "texture": "homogeneous, hypodense",
    "relations": "the tumour is inside the kidney",
}


def triplet_row(img: dict, rois: list[dict], description: str | None = GOOD_DESCRIPTION,
                attributes: dict | None = None, status: str = "ok") -> dict:
    return {
        "sample_id": img["sample_id"], "source": img["source"], "image_path": img["image_path"],
        "image_sha256": img["image_sha256"], "roi_ids": [r["roi_id"] for r in rois],
        "rois_json": json.dumps([{k: r[k] for k in ("roi_id", "label", "kind", "side", "size_class", "intensity",
                                                     "region")} for r in rois]),
        "coarse_caption": "CT of the abdomen with a tumour.", "coarse_json": "{}", "passages": [],
        "description": description if status == "ok" else None,
        "attributes": dict(attributes or GOOD_ATTRIBUTES) if status == "ok" else None,
        "clauses_json": "[]", "generator": {"backend": "grounded", "model": "grounded", "version": "1"},
        "generator_id": "grounded@1", "prompt_sha256": hashlib.sha256(b"prompt").hexdigest(), "status": status,
        "failure_reason": "" if status == "ok" else "backend timed out twice", "prompt_tokens": 0,
        "completion_tokens": 0, "latency_s": 0.0, "cached": False, "volume_ref": img["volume_ref"],
        "slice_index": img["slice_index"], "modality": img["modality"], "organ": img["organ"],
        "labels": img["labels"], "licence": img["licence"], "split": img["split"], "shard": img["shard"],
    }


def write_partition(layout: DataLayout, source: str, shard: str, images: list[dict], rois: list[dict],
                    triplets: list[dict]) -> None:
    """Write the three tables of one source x shard partition in their real schemas."""
    from medtrinity_assets.tables import ROI_SCHEMA, TRIPLET_SCHEMA

    part = {"source": source, "shard": shard}
    write_table(layout.table_path("images", part), rows_to_table(images, IMAGE_SCHEMA))
    write_table(layout.table_path("rois", part), rows_to_table(rois, ROI_SCHEMA))
    write_table(layout.table_path("triplets", part), rows_to_table(triplets, TRIPLET_SCHEMA))


def sample_set(layout: DataLayout, source: str = "demo", shard: str = "s00", n: int = 4, seed0: int = 0):
    """n images of n subjects with one tumour ROI each, and good triplets: (images, rois, triplets)."""
    images, rois, triplets = [], [], []
    for i in range(n):
        img = image_row(layout, f"{source}-{i:03d}", source, f"sub-{source}-{i}", shard=shard, seed=seed0 + i)
        r = [roi_row(img["sample_id"], source, shard=shard)]
        images.append(img)
        rois += r
        triplets.append(triplet_row(img, r))
    return images, rois, triplets


def write_config(tmp: Path, sources: list[str], extra: str = "") -> Path:
    """A sources YAML whose sources exist as empty folders (the tables are written by the test)."""
    lines = [f"data_root: {tmp / 'out'}", "shards: 4", "salt: test-salt", "sources:"]
    for s in sources:
        (tmp / "in" / s).mkdir(parents=True, exist_ok=True)
        lines += [f"  - name: {s}", "    format: image_folder", f"    path: {tmp / 'in' / s}",
                  "    licence: CC0-1.0", "    roi: none"]
    path = tmp / "sources.yaml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def dataset_exclusions(layout, quality: dict, eval_hashes=None):
    """What the ``near_duplicates`` asset does for a test's tables: find the dataset-wide exclusions over
    every image, write them where the exports read them, and return them."""
    from medtrinity_assets.export.shard_inputs import image_index
    from medtrinity_assets.quality.leakage import load_eval_hashes
    from medtrinity_assets.quality.near_duplicates import find_exclusions, write_exclusions

    excl = find_exclusions(image_index(layout), load_eval_hashes(eval_hashes), quality, root=layout.root)
    write_exclusions(layout, excl)
    return excl
