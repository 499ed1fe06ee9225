"""MONAI bundles run by their own inference config on whole volumes, sliced like our images; trust required.

The bundle is a real Model-Zoo-layout bundle the test builds (support.roi.tiny_bundle): a 3D network
behind the bundle's own LoadImaged / Orientationd / Spacingd / ScaleIntensityRanged preprocessing, a 3D
sliding-window inferer and Invertd / argmax / SaveImaged postprocessing. Our ROI stage must reproduce,
exactly, what ``monai.bundle.run`` writes when the bundle is run directly on the source file.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from medtrinity_assets.roi import rle
from medtrinity_assets.roi.build import RoiSettings, roi_partition
from medtrinity_assets.roi.registry import load_registry, sha256_tree
from medtrinity_assets.roi.volumes import SourceVolumes
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.roi import bundle_volume, tiny_bundle

pytestmark = pytest.mark.slow  # runs MONAI workflows (seconds each)


def _registry(tmp: Path, entry: dict) -> Path:
    path = tmp / "models.yaml"
    path.write_text(yaml.safe_dump({"models": [entry]}, sort_keys=False))
    return path


def _ingest(tmp: Path, files: dict[str, str]):
    """A nifti source with the given volumes (name -> orientation), ingested as the pipeline does."""
    from medtrinity_assets.ingest import build_images
    from medtrinity_assets.settings import _load

    for name, orientation in files.items():
        bundle_volume(tmp / "src" / name, orientation)
    cfg_path = tmp / "sources.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "data_root": "out", "shards": 1, "salt": "t", "context_slices": 30,
        "sources": [{"name": "ct", "format": "nifti", "path": "src", "modality": "CT", "organ": "abdomen", "roi": "expert"}],
    }))
    _load.cache_clear()
    cfg = _load(str(cfg_path))
    layout = DataLayout(cfg.data_root)
    rows = build_images(cfg, cfg.sources[0], "s00", layout, salt="t").table.to_pylist()
    return cfg, layout, rows


def _direct(bundle: Path, image: Path, out: Path) -> Path:
    """The bundle run the way its authors document it: ``monai.bundle.run`` on its inference config."""
    from monai.bundle import run

    run(run_id="run", init_id="initialize", config_file=str(bundle / "configs" / "inference.json"),
        meta_file=str(bundle / "configs" / "metadata.json"), logging_file=None, bundle_root=str(bundle),
        output_dir=str(out), datalist=[str(image)], **{"dataset#data": [{"image": str(image)}]})
    (saved,) = sorted(out.rglob("*.nii.gz"))
    return saved


def test_bundle_output_reproduces_monai_bundle_run_exactly(tmp_path):
    from medtrinity_assets.formats.nifti import load_volume_pair
    from medtrinity_assets.preprocess.item_images import item_to_slices

    bundle = tiny_bundle(tmp_path / "bundle")
    cfg, layout, rows = _ingest(tmp_path, {"ct_ras.nii.gz": "RAS", "ct_lps.nii.gz": "LPS"})
    (model,) = load_registry(_registry(tmp_path, {"name": "tiny", "kind": "monai_bundle", "path": "bundle", "trusted": True,
                                                  "sha256": sha256_tree(bundle), "applies_to": {"modalities": ["CT"]}}))
    assert model.ok and model.origin == "expert:tiny@0.2.0"
    volumes = SourceVolumes(cfg.sources[0], "t", cfg.shards)
    result = roi_partition(rows, layout, "expert", [model], RoiSettings(min_component_pixels=1), volumes=volumes)
    assert not result.quarantine and all(r["status"] == "ok" for r in result.rois), [r["error"] for r in result.rois if r["status"] != "ok"][:3]
    assert {r["label"] for r in result.rois} == {"organ", "bright focus"}  # names from the bundle's metadata
    assert all(r["origin"] == "expert:tiny@0.2.0" and r["model_sha256"] == sha256_tree(bundle) for r in result.rois)

    compared = 0
    for name in ("ct_ras.nii.gz", "ct_lps.nii.gz"):
        direct = _direct(bundle, tmp_path / "src" / name, tmp_path / f"direct_{name}")
        # the direct output paired with its image by ingest's own reader and slicer: the ground-truth path
        item = load_volume_pair(tmp_path / "src" / name, direct, modality="CT", label_names={1: "organ", 2: "bright focus"})
        truth = {s.slice_index: s.label_map for s in item_to_slices(item, max_side=cfg.max_side, context_slices=30)}
        mine = [r for r in rows if volumes.get(r["volume_ref"]).locator["image"] == name]
        assert mine
        for r in mine:
            lm = truth[r["slice_index"]]
            for value, label in ((1, "organ"), (2, "bright focus")):
                ours = np.zeros(lm.shape, bool)
                for roi in result.rois:
                    if roi["sample_id"] == r["sample_id"] and roi["label"] == label:
                        ours |= rle.decode(roi["mask_rle"])
                assert np.array_equal(ours, lm == value), (name, r["slice_index"], label)
                compared += int((lm == value).sum())
        # and the focus is where the image is bright: no axis of the volume was flipped on the way back
        focus = [(r, rle.decode(x["mask_rle"])) for r in mine for x in result.rois
                 if x["sample_id"] == r["sample_id"] and x["label"] == "bright focus"]
        assert focus
        for r, m in focus:
            values = np.load(layout.resolve(r["values_path"]))
            assert values[m].mean() > 200 and values[~m].mean() < 120
    assert compared > 1000


def test_untrusted_or_unpinned_bundles_are_refused_and_never_run(tmp_path):
    flag = tmp_path / "PWNED"
    payload = f"$__import__('pathlib').Path({str(flag)!r}).write_text('ran')"
    bundle = tiny_bundle(tmp_path / "bundle", payload=payload)
    cfg, layout, rows = _ingest(tmp_path, {"ct.nii.gz": "RAS"})
    volumes = SourceVolumes(cfg.sources[0], "t", cfg.shards)
    digest = sha256_tree(bundle)
    cases = [
        ({}, "set 'trusted: true'"),
        ({"trusted": True}, "must pin its digest"),
        ({"trusted": True, "sha256": "0" * 64}, "sha256 mismatch"),
    ]
    for extra, message in cases:
        (model,) = load_registry(_registry(tmp_path, {"name": "evil", "kind": "monai_bundle", "path": "bundle", **extra}))
        assert not model.ok and message in model.error and "refused" in model.error or "mismatch" in model.error
        result = roi_partition(rows, layout, "expert", [model], RoiSettings(), volumes=volumes)
        assert not [r for r in result.rois if r["status"] == "ok"]
        assert all(message in r["error"] for r in result.rois)
        assert not flag.exists()  # nothing in the bundle was executed
    # the operator read it and pinned it: now it is trusted code, and it runs (payload included)
    (model,) = load_registry(_registry(tmp_path, {"name": "evil", "kind": "monai_bundle", "path": "bundle", "trusted": True,
                                                  "sha256": digest}))
    assert model.ok
    result = roi_partition(rows, layout, "expert", [model], RoiSettings(), volumes=volumes)
    assert flag.exists() and any(r["status"] == "ok" for r in result.rois)


def test_trusted_bundle_weights_holding_objects_are_refused(tmp_path):
    import torch

    from medtrinity_assets.roi.expert import ModelLoadError, load_expert

    bundle = tiny_bundle(tmp_path / "bundle")
    torch.save({"payload": Path("/etc/passwd")}, bundle / "models" / "model.pt")  # a pickled object, not tensors
    (model,) = load_registry(_registry(tmp_path, {"name": "b", "kind": "monai_bundle", "path": "bundle", "trusted": True,
                                                  "sha256": sha256_tree(bundle)}))
    assert model.ok
    with pytest.raises(ModelLoadError, match="holds Python objects"):
        load_expert(model)


def test_registry_docs_say_what_each_kind_executes():
    from medtrinity_assets.roi import registry

    doc = textwrap.dedent(registry.__doc__)
    for words in ("``builtin``", "``torchscript``", "``monai_bundle``", "os.system", "trusted: true", "weights_only"):
        assert words in doc
