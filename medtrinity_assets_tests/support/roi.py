"""Fixtures of the ROI tests: `images` partitions built from phantoms the way ingest builds them.

A phantom is written as NIfTI (stored LPS or RAS), read back with the project's NIfTI reader,
sliced/resized by the project's preprocessing and stored as content-addressed PNG / .npy blobs,
so the ROI stage sees exactly what it sees in the pipeline, with the phantom's truth at hand.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from medtrinity_assets.demo.phantom import LABEL_NAMES, Phantom, make_phantom, write_label_nifti, write_nifti
from medtrinity_assets.storage import DataLayout, rows_to_table, write_table
from medtrinity_assets.tables import IMAGE_SCHEMA


def read_phantom(ph: Phantom, folder: Path, orientation: str):
    """Write ``ph`` as NIfTI in ``orientation`` and read it back canonical (a ReadItem)."""
    from medtrinity_assets.formats.nifti import load_volume_pair

    img = write_nifti(ph, folder / f"{ph.subject_id}_{orientation}.nii.gz", orientation=orientation)
    lab = write_label_nifti(ph, folder / f"{ph.subject_id}_{orientation}_label.nii.gz", orientation=orientation)
    return load_volume_pair(img, lab, modality="CT", label_names=dict(LABEL_NAMES))


def image_rows(item, layout: DataLayout, *, source: str, shard: str, sample_prefix: str, organ: str = "abdomen",
               max_side: int = 512, slices: list[int] | None = None, with_labels: bool = True) -> list[dict[str, Any]]:
    """IMAGE_SCHEMA rows (plus blobs) for the slices of a ReadItem, as ingest writes them."""
    from medtrinity_assets.preprocess.encode import encode_label_png, encode_png, encode_values
    from medtrinity_assets.preprocess.item_images import item_to_slices

    rows = []
    for s in item_to_slices(item, max_side=max_side, context_slices=2, organ=organ):
        if slices is not None and s.slice_index not in slices:
            continue
        img_rel, img_sha = layout.put_blob(encode_png(s.image), ".png")
        val_rel = layout.put_blob(encode_values(s.values), ".npy")[0] if s.values is not None else None
        mask_rel = None
        if with_labels and s.label_map is not None:
            mask_rel = layout.put_blob(encode_label_png(s.label_map), ".png")[0]
        h, w = s.image.shape[:2]
        rows.append({
            "sample_id": f"{sample_prefix}-z{s.slice_index:03d}", "source": source, "item_key": sample_prefix,
            "subject_key": f"sub-{sample_prefix}", "study_key": "", "series_key": "", "volume_ref": sample_prefix,
            "rel_path": f"{sample_prefix}.nii.gz", "slice_index": s.slice_index, "n_slices": s.n_slices,
            "axis": "axial", "neighbour_slices": s.neighbours, "modality": item.modality, "organ": organ,
            "image_path": img_rel, "image_sha256": img_sha, "values_path": val_rel, "width": w, "height": h,
            "orig_width": s.orig_size[1], "orig_height": s.orig_size[0], "pixel_spacing": list(s.spacing),
            "col_toward": item.col_toward, "row_toward": item.row_toward, "window": s.window_name,
            "gt_mask_path": mask_rel,
            "gt_label_names_json": json.dumps({str(k): v for k, v in item.label_names.items()}) if mask_rel else None,
            "gt_boxes_json": json.dumps(s.boxes) if s.boxes else None, "licence": "CC0-1.0", "split": "train",
            "shard": shard,
        })
    return rows


def write_images_partition(layout: DataLayout, source: str, shard: str, rows: list[dict[str, Any]]) -> Path:
    path = layout.table_path("images", {"source": source, "shard": shard})
    write_table(path, rows_to_table(rows, IMAGE_SCHEMA))
    return path


def phantom_partition(tmp: Path, layout: DataLayout, source: str, shard: str, index: int, *, seed: int = 3,
                      orientation: str = "LPS", lesion_slices_only: bool = True, **kw) -> tuple[Phantom, list[dict]]:
    """One phantom volume as an images partition; only slices holding a lesion by default (fast)."""
    ph = make_phantom(seed, index)
    item = read_phantom(ph, tmp, orientation)
    wanted = sorted({z for les in ph.lesions for z in les["slices"]}) if lesion_slices_only else None
    rows = image_rows(item, layout, source=source, shard=shard, sample_prefix=f"{source}-{index}", slices=wanted, **kw)
    write_images_partition(layout, source, shard, rows)
    return ph, rows


def write_config(root: Path, sources: list[dict[str, Any]], models_yaml: str | None, rois: dict | None = None,
                 shards: int = 2) -> Path:
    """A sources YAML (data_root = root/out) plus models.yaml beside it."""
    import yaml

    cfg: dict[str, Any] = {"data_root": "out", "shards": shards, "salt": "test-salt", "sources": sources}
    if models_yaml is not None:
        (root / "models.yaml").write_text(textwrap.dedent(models_yaml))
        cfg["models"] = "models.yaml"
    if rois:
        cfg["rois"] = rois
    path = root / "sources.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def lesion_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("status") == "ok" and r.get("kind") == "finding"]


def max_area_slice(les: dict[str, Any]) -> int:
    return max(les["slice_areas_px"], key=les["slice_areas_px"].get)


def tiny_torchscript(path: Path, bias: float = 0.0) -> Path:
    """A real TorchScript file: a 1x1 convolution 'segmenter' that fires on bright pixels."""
    import torch

    net = torch.nn.Conv2d(1, 1, kernel_size=1)
    with torch.no_grad():
        net.weight.fill_(20.0)
        net.bias.fill_(-10.0 + bias)
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 1, 16, 16)), str(path))
    return path


def tiny_bundle(folder: Path, *, payload: str | None = None) -> Path:
    """A real MONAI bundle folder in the Model Zoo layout (configs/metadata.json, configs/inference.json,
    models/model.pt): a 3D network run by the bundle's own workflow -- LoadImaged, EnsureChannelFirstd,
    Orientationd RAS, Spacingd 1.5 x 1.5 x 2.0 mm, ScaleIntensityRanged, a 3D SlidingWindowInferer
    (32 x 32 x 16, overlap 0.25), Activationsd softmax, Invertd, AsDiscreted argmax, SaveImaged.

    The network is a 3 x 3 x 3 convolution with set weights that reads scaled intensity: class 1 above
    0.55 ("organ"), class 2 above 0.8 ("bright focus"), so what it finds is known. ``payload``: a
    `$` expression added to the bundle's ``initialize`` list (what a hostile bundle would do)."""
    import torch

    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    meta = {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "version": "0.2.0", "monai_version": "1.6.1", "name": "tiny threshold segmenter (test)",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "hounsfield", "num_channels": 1,
                                 "spatial_shape": [32, 32, 16], "dtype": "float32"}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 3,
                                 "spatial_shape": [32, 32, 16], "dtype": "float32",
                                 "channel_def": {"0": "background", "1": "organ", "2": "bright focus"}}},
        },
    }
    pre = [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
        {"_target_": "Spacingd", "keys": "image", "pixdim": [1.5, 1.5, 2.0], "mode": "bilinear"},
        {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -200, "a_max": 300, "b_min": 0.0, "b_max": 1.0,
         "clip": True},
        {"_target_": "EnsureTyped", "keys": "image"},
    ]
    post = [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
         "nearest_interp": False, "to_tensor": True},
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_postfix": "seg",
         "output_dtype": "$np.uint8", "resample": False, "separate_folder": False, "print_log": False},
    ]
    inference = {
        "imports": ["$import glob", "$import numpy as np", "$import torch"],
        "bundle_root": ".", "output_dir": "$@bundle_root + '/eval'", "dataset_dir": "/workspace/data",
        "datalist": "$list(sorted(glob.glob(@dataset_dir + '/*.nii.gz')))",
        "device": "$torch.device('cpu')",
        "network_def": {"_target_": "torch.nn.Conv3d", "in_channels": 1, "out_channels": 3, "kernel_size": 3, "padding": 1},
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": pre},
        "dataset": {"_target_": "Dataset", "data": "$[{'image': i} for i in @datalist]", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "shuffle": False, "num_workers": 0},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [32, 32, 16], "sw_batch_size": 2, "overlap": 0.25},
        "postprocessing": {"_target_": "Compose", "transforms": post},
        "handlers": [{"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/model.pt'",
                      "load_dict": {"model": "@network"}, "map_location": "cpu"}],
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@dataloader",
                      "network": "@network", "inferer": "@inferer", "postprocessing": "@postprocessing",
                      "val_handlers": "@handlers", "amp": False},
        "initialize": ["$monai.utils.set_determinism(seed=0)"] + ([payload] if payload else []),
        "run": ["$@evaluator.run()"],
    }
    (folder / "configs" / "metadata.json").write_text(json.dumps(meta, indent=1))
    (folder / "configs" / "inference.json").write_text(json.dumps(inference, indent=1))
    net = torch.nn.Conv3d(1, 3, kernel_size=3, padding=1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor([0.0, -0.55 * 30, -0.8 * 120]))
        net.weight[1, 0, 1, 1, 1] = 30.0  # logit(organ) = 30 (x - 0.55)
        net.weight[2, 0, 1, 1, 1] = 120.0  # logit(bright focus) = 120 (x - 0.8)
    torch.save(net.state_dict(), str(folder / "models" / "model.pt"))
    return folder


def bundle_volume(path: Path, orientation: str = "RAS") -> Path:
    """A CT-like NIfTI volume (40 x 48 x 20 voxels of 1.2 x 1.0 x 2.5 mm) with an off-centre 'organ' (120 HU)
    holding a brighter focus (260 HU) near one end: asymmetric, so a flipped axis would show."""
    import nibabel as nib

    x, y, z = np.mgrid[0:40, 0:48, 0:20].astype(np.float32)
    vol = np.full((40, 48, 20), -100.0, np.float32)
    vol[((x - 14) / 9) ** 2 + ((y - 22) / 12) ** 2 + ((z - 9) / 6) ** 2 <= 1] = 120.0
    vol[(x - 11) ** 2 + (y - 27) ** 2 + ((z - 11) * 2) ** 2 <= 9] = 260.0
    vol += np.random.default_rng(0).normal(0, 5, vol.shape).astype(np.float32)
    aff = np.diag([1.2, 1.0, 2.5, 1.0])
    if orientation == "LPS":
        vol = vol[::-1, ::-1, :].copy()
        aff = np.diag([-1.2, -1.0, 2.5, 1.0])
        aff[:3, 3] = [47.0, 47.0, 0.0]
    img = nib.Nifti1Image(vol, aff)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def disk(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
