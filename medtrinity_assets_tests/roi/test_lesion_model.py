"""The built-in lesion segmenter: trained by the lesion_model asset, registered, resolved, run; its Dice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, materialize

from medtrinity_assets.resources import PipelineResource
from medtrinity_assets.settings import _load
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.roi import write_config

TINY = {"steps": 12, "train_indices": [0, 1], "eval_indices": [1000], "batch_size": 8, "channels": [4, 8, 16],
        "data": "medtrinity_assets.demo.phantom:lesion_training_volume"}
MODELS = """
models:
  - name: lesion_seg
    kind: torchscript
    path: "@models/lesion_seg"
    applies_to: {modalities: [CT], organs: [abdomen]}
    labels: {1: lesion}
"""


def _metadata(instance, key: str):
    rec = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(key)), limit=1).records[0]
    return rec.asset_materialization.metadata


@pytest.mark.slow
def test_lesion_model_asset_trains_registers_and_is_deterministic(tmp_path):
    from medtrinity_assets.assets.rois import expert_models, lesion_model, resolve_models
    from medtrinity_assets.demo.phantom import make_phantom
    from medtrinity_assets.roi.expert import load_expert

    (tmp_path / "in").mkdir()
    src = {"name": "ct", "format": "nifti", "path": "in", "modality": "CT", "roi": "expert"}
    cfg_path = write_config(tmp_path, [src], MODELS, rois={"lesion_model": TINY})
    (tmp_path / "dh").mkdir()
    instance = DagsterInstance.local_temp(tempdir=str(tmp_path / "dh"))
    _load.cache_clear()
    res = materialize([lesion_model, expert_models], instance=instance,
                      resources={"pipeline": PipelineResource(config_path=str(cfg_path))})
    assert res.success
    meta = _metadata(instance, "lesion_model")
    version = meta["version"].value
    assert 0.0 <= meta["dice_heldout"].value <= 1.0 and meta["metrics"].value["heldout_volumes"] == 1
    assert _metadata(instance, "expert_models")["errors"].value == 0

    cfg = _load(str(cfg_path))
    (model,) = resolve_models(cfg, DataLayout(cfg.data_root))
    assert model.ok and model.version == version and model.origin == f"expert:lesion_seg@{version}"
    assert model.preprocess == {"window": [-250.0, 250.0], "size": [128, 128]}
    expert = load_expert(model)
    ph = make_phantom(7, 1000)
    prob = expert.probabilities(ph.volume_hu[ph.lesions[0]["slices"][0]])
    assert prob.shape == (1, 128, 128) and np.isfinite(prob).all()

    # same settings, same weights, same version: retraining without a change is not a model update
    res = materialize([lesion_model], instance=instance, resources={"pipeline": PipelineResource(config_path=str(cfg_path))})
    assert res.success and _metadata(instance, "lesion_model")["version"].value == version
    instance.dispose()


@pytest.mark.slow
def test_lesion_model_reaches_reported_dice(tmp_path):
    """Default settings (what `medtrinity demo` trains, ~2 min on 2 cores): Dice on held-out phantom volumes."""
    from medtrinity_assets.demo.phantom import lesion_training_volume
    from medtrinity_assets.roi.lesion_model import TrainSettings, train

    result = train(TrainSettings(), Path(tmp_path) / "lesion_seg", data=lesion_training_volume, log=lambda *_: None)
    print("lesion_seg", result.version, result.metrics)
    assert result.metrics["dice_heldout"] >= 0.8, result.metrics  # measured 0.884 (6 held-out volumes, 288 slices)


def test_trainer_takes_its_data_from_the_caller(tmp_path):
    """The trainer imports no demo code: volumes come from the injected source (here a tiny synthetic one),
    and a config without data names what to set."""
    import ast
    import inspect

    from medtrinity_assets.roi import lesion_model
    from medtrinity_assets.roi.lesion_model import TrainSettings, load_volume_source, train

    tree = ast.parse(inspect.getsource(lesion_model))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any("demo" in (m or "") for m in imported), imported

    calls = []

    def blobs(seed: int, index: int):
        calls.append(index)
        rng = np.random.default_rng((seed, index))
        vol = rng.normal(40.0, 10.0, size=(4, 32, 32)).astype(np.float32)
        mask = np.zeros(vol.shape, bool)
        mask[1:3, 10:16, 12:18] = True
        vol[mask] = 150.0
        return vol, mask

    settings = TrainSettings(steps=2, train_indices=(0, 1), eval_indices=(5,), batch_size=2, patch=16, channels=(4, 8))
    result = train(settings, tmp_path / "seg", data=blobs, log=lambda *_: None)
    assert sorted(set(calls)) == [0, 1, 5] and result.metrics["heldout_volumes"] == 1
    assert json.loads((tmp_path / "seg" / "registration.json").read_text())["preprocess"]["size"] == [32, 32]
    with pytest.raises(ValueError, match="rois.lesion_model.data is not set"):
        load_volume_source(None)
    with pytest.raises(ValueError, match="cannot import"):
        load_volume_source("medtrinity_assets.nowhere:fn")
