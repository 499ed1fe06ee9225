"""Precomputed expert masks (TotalSegmentator / nnU-Net / MONAI Label output) consumed as an expert."""

from __future__ import annotations

import json

import numpy as np
import yaml

from medtrinity_assets.roi import rle
from medtrinity_assets.roi.build import RoiSettings, roi_partition
from medtrinity_assets.roi.precomputed import PrecomputedMasks, read_label_names
from medtrinity_assets.roi.volumes import SourceVolumes
from medtrinity_assets.storage import DataLayout


def _save(path, data, spacing=(1.5, 1.5, 2.5)):
    import nibabel as nib

    aff = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    img = nib.Nifti1Image(np.ascontiguousarray(np.transpose(data, (2, 1, 0))), aff)
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def _world(tmp):
    """Four phantom-like volumes; masks: a multi-label file, a TotalSegmentator per-class folder, a wrong-shape
    file, and none."""
    from medtrinity_assets.ingest import build_images
    from medtrinity_assets.settings import _load

    rng = np.random.default_rng(0)
    truth = {}
    for i, name in enumerate(("a", "b", "c", "d")):
        vol = rng.normal(40, 10, (12, 64, 64)).astype(np.float32) - 0.0
        vol[:, :4, :] = -1000
        lab = np.zeros(vol.shape, np.uint8)
        lab[2:10, 15 + i : 40 + i, 10:30] = 1  # 'liver', different place per volume
        lab[4:7, 20 + i : 26 + i, 15:21] = 2  # 'tumour' inside it
        vol[lab == 1] = 60
        vol[lab == 2] = 20
        _save(tmp / "src" / f"{name}.nii.gz", np.rint(vol).astype(np.int16))
        truth[name] = lab
    _save(tmp / "masks" / "a.nii.gz", truth["a"])  # same file name: nnU-Net / MONAI Label
    _save(tmp / "masks" / "b" / "liver.nii.gz", (truth["b"] == 1).astype(np.uint8))  # TotalSegmentator layout
    _save(tmp / "masks" / "b" / "liver_tumour.nii.gz", (truth["b"] == 2).astype(np.uint8))
    _save(tmp / "masks" / "c.nii.gz", truth["c"][:, :32])  # wrong shape
    (tmp / "labels.json").write_text(json.dumps({"liver": 1, "liver tumour": 2}))
    cfg_path = tmp / "sources.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "data_root": "out", "shards": 1, "salt": "t", "context_slices": 12,
        "sources": [{"name": "ct", "format": "nifti", "path": "src", "modality": "CT", "organ": "abdomen", "roi": "expert",
                     "expert_masks": {"name": "seg", "version": "1.0", "path": "masks", "labels": "labels.json"}}],
    }))
    _load.cache_clear()
    cfg = _load(str(cfg_path))
    layout = DataLayout(cfg.data_root)
    rows = build_images(cfg, cfg.sources[0], "s00", layout, salt="t").table.to_pylist()
    return cfg, layout, rows, truth


def test_masks_become_rois_and_bad_volumes_quarantine_rows(tmp_path):
    cfg, layout, rows, truth = _world(tmp_path)
    source = cfg.sources[0]
    masks = PrecomputedMasks.from_config(source.expert_masks)
    volumes = SourceVolumes(source, "t", cfg.shards)
    result = roi_partition(rows, layout, "expert", [], RoiSettings(min_component_pixels=1), volumes=volumes, masks=masks)
    names = {r["volume_ref"]: volumes.get(r["volume_ref"]).locator["image"].split(".")[0] for r in rows}
    by_class = {q["error_class"] for q in result.quarantine}
    assert len(result.quarantine) == 2 and by_class == {"mask_misaligned", "mask_missing"}, result.quarantine
    assert all(q["stage"] == "roi" and q["reason"].startswith("seg: ") for q in result.quarantine)
    ok = [r for r in result.rois if r["status"] == "ok"]
    assert {r["origin"] for r in ok} == {"expert:seg@1.0"} and all(r["model_sha256"] == masks.digest for r in ok)
    for row in rows:
        name = names[row["volume_ref"]]
        mine = [r for r in result.rois if r["sample_id"] == row["sample_id"]]
        if name in ("c", "d"):
            assert mine and all(r["status"] == "error" for r in mine)
            continue
        lab = truth[name][row["slice_index"]]
        expected = {"a": {1: "liver", 2: "liver tumour"}, "b": {1: "liver", 2: "liver tumour"}}[name]
        for value, label in expected.items():
            got = np.zeros(lab.shape, bool)
            for r in mine:
                if r["label"] == label:
                    got |= rle.decode(r["mask_rle"])
            assert np.array_equal(got, lab == value), (name, row["slice_index"], label)
    facts = {f["sample_id"]: f for f in result.image_facts}
    assert any("liver" in f["organs"] for f in facts.values())
    assert result.stats.models_used == {"masks:seg": masks.version_key}


def test_label_maps_in_every_spelling(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"1": "liver", "2": "spleen"}))
    (tmp_path / "b.json").write_text(json.dumps({"background": 0, "liver": 1, "spleen": 2}))
    (tmp_path / "c.csv").write_text("value,name\n0,background\n1,liver\n2,spleen\n")
    for f in ("a.json", "b.json", "c.csv"):
        assert read_label_names(tmp_path / f) == {1: "liver", 2: "spleen"}
    assert read_label_names("totalsegmentator") is None and read_label_names({"1": "liver"}) == {1: "liver"}
