"""The built-in lesion segmenter: trained by the lesion_model asset, registered, resolved, run; its Dice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, materialize

from medtrinity_assets.resources import PipelineResource
from medtrinity_assets.settings import _load
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.roi import write_config

TINY = {"steps": 12, "train_indices": [0, 1], "eval_indices": [1000], "batch_size": 8, "channels": [4, 8, 16]}
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

    cfg_path = write_config(tmp_path, [], MODELS, rois={"lesion_model": TINY})
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
    from medtrinity_assets.roi.lesion_model import TrainSettings, train

    result = train(TrainSettings(), Path(tmp_path) / "lesion_seg", log=lambda *_: None)
    print("lesion_seg", result.version, result.metrics)
    assert result.metrics["dice_heldout"] >= 0.8, result.metrics  # measured 0.884 (6 held-out volumes, 288 slices)
