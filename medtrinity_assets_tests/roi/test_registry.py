"""Model registry: digests, mismatches, missing files, safe loading of TorchScript and MONAI bundles."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from medtrinity_assets.roi.expert import ModelLoadError, load_expert
from medtrinity_assets.roi.registry import (
    RegistryError,
    builtin_digest,
    current_versions,
    load_registry,
    sha256_file,
    sha256_tree,
    write_registration,
)
from medtrinity_assets_tests.support.roi import disk, tiny_bundle, tiny_torchscript


def _registry(tmp: Path, body: str) -> Path:
    p = tmp / "models.yaml"
    p.write_text(textwrap.dedent(body))
    return p


def test_builtin_torchscript_and_digest_mismatch(tmp_path):
    ts = tiny_torchscript(tmp_path / "seg.ts")
    digest = sha256_file(ts)
    reg = _registry(tmp_path, f"""
        models:
          - {{name: ct_anatomy, kind: builtin, version: "1.0"}}
          - {{name: good, kind: torchscript, path: seg.ts, version: "3", sha256: {digest}}}
          - {{name: tampered, kind: torchscript, path: seg.ts, version: "3", sha256: {"f" * 64}}}
          - {{name: unquoted, kind: torchscript, path: seg.ts, version: "3", sha256: {"1" * 64}}}
          - {{name: gone, kind: torchscript, path: absent.ts, version: "1"}}
          - {{name: odd, kind: pickle, path: seg.ts, version: "1"}}
        """)
    models = {m.name: m for m in load_registry(reg)}
    assert models["ct_anatomy"].ok and models["ct_anatomy"].sha256 == builtin_digest("ct_anatomy")
    assert models["good"].ok and models["good"].sha256 == digest and models["good"].origin == "expert:good@3"
    assert not models["tampered"].ok and "sha256 mismatch" in models["tampered"].error and "tampered" in models["tampered"].error
    assert not models["unquoted"].ok and "quote the digest" in models["unquoted"].error
    assert not models["gone"].ok and "not found" in models["gone"].error
    assert not models["odd"].ok and "kind" in models["odd"].error
    versions = current_versions(list(models.values()))
    assert versions["model:good"] == f"3@{digest[:16]}" and versions["model:gone"].startswith("error:")


def test_registry_file_errors_name_the_file(tmp_path):
    with pytest.raises(RegistryError, match="not found"):
        load_registry(tmp_path / "nope.yaml")
    with pytest.raises(RegistryError, match="'models' list"):
        load_registry(_registry(tmp_path, "models: 3\n"))
    with pytest.raises(RegistryError, match="duplicate"):
        load_registry(_registry(tmp_path, """
            models:
              - {name: a, kind: builtin, builtin: ct_anatomy, version: "1"}
              - {name: a, kind: builtin, builtin: ct_anatomy, version: "2"}
            """))


def test_torchscript_expert_predicts_components(tmp_path):
    tiny_torchscript(tmp_path / "seg.ts")
    reg = _registry(tmp_path, """
        models:
          - name: bright
            kind: torchscript
            path: seg.ts
            version: "1"
            labels: {1: bright spot}
            preprocess: {window: [0, 100]}
        """)
    (model,) = load_registry(reg)
    values = np.zeros((64, 64), np.float32)
    values[disk((64, 64), 20, 20, 6)] = 100.0
    (cand,) = load_expert(model).predict(values, "CT")
    assert cand.label == "bright spot" and cand.kind == "finding" and cand.origin == "expert:bright@1"
    assert abs(int(cand.mask.sum()) - int(disk((64, 64), 20, 20, 6).sum())) <= 8 and 0.5 < cand.confidence <= 1.0
    # a model with a fixed (physical) window is not run on display grey levels (a PNG, a screen capture)
    from medtrinity_assets.roi.builtin import ExpertInput

    reading = load_expert(model).read(ExpertInput(values, "CT", "abdomen", physical=False))
    assert reading.masks == {} and "display grey levels" in reading.note


def test_monai_bundle_resolves_only_trusted_and_pinned(tmp_path):
    """The digest and the version come from the folder itself; a new weights file is a new digest. Running
    bundles (per volume, by their own config) is tested in test_bundle.py."""
    import torch

    bundle = tiny_bundle(tmp_path / "tiny_bundle")
    digest = sha256_tree(bundle)
    reg = _registry(tmp_path, f"""
        models:
          - {{name: tiny, kind: monai_bundle, path: tiny_bundle, trusted: true, sha256: "{digest}"}}
          - {{name: untrusted, kind: monai_bundle, path: tiny_bundle}}
        """)
    tiny, untrusted = load_registry(reg)
    assert tiny.ok and tiny.version == "0.2.0" and tiny.sha256 == digest and tiny.trusted
    assert not untrusted.ok and "refused" in untrusted.error and "trusted: true" in untrusted.error
    with pytest.raises(ModelLoadError, match="refused"):
        load_expert(untrusted)
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    torch.save({k: v + 0.01 for k, v in state.items()}, bundle / "models" / "model.pt")
    changed, _ = load_registry(reg)  # new weights behind the pin: refused until the pin is updated
    assert not changed.ok and "sha256 mismatch" in changed.error


def test_registration_folder_and_tampering(tmp_path):
    folder = tmp_path / "models" / "seg"
    folder.mkdir(parents=True)
    ts = tiny_torchscript(folder / "model-abc.ts")
    write_registration(folder, ts.name, "abc", sha256_file(ts), labels={1: "lesion"},
                       preprocess={"window": [0, 1]}, metrics={"dice": 0.5})
    reg = _registry(tmp_path, 'models:\n  - {name: seg, kind: torchscript, path: "@models/seg"}\n')
    (model,) = load_registry(reg, models_dir=tmp_path / "models")
    assert model.ok and model.version == "abc" and model.labels == {1: "lesion"} and model.metrics == {"dice": 0.5}
    (unset,) = load_registry(reg, models_dir=tmp_path / "elsewhere")
    assert not unset.ok and "lesion_model" in unset.error
    tiny_torchscript(ts, bias=2.0)  # weights replaced behind the registry's back
    (changed,) = load_registry(reg, models_dir=tmp_path / "models")
    assert not changed.ok and "differs from the registered" in changed.error
    json.loads((folder / "registration.json").read_text())


def test_expert_input_is_physical_only_for_calibrated_ct_and_mr_signal():
    from medtrinity_assets.roi.build import expert_input

    values = np.zeros((8, 8), np.float32)
    row = {"modality": "CT", "values_path": "blobs/x.npy", "pixel_spacing": [0.7, 0.7]}
    assert expert_input({**row, "window": "ct:abdomen(40/400)"}, values, None).physical
    # a CT screen capture or PNG: its .npy holds grey levels, which no HU-trained model may read as HU
    assert not expert_input({**row, "window": "percentile(0.5-99.5)"}, values, None).physical
    assert expert_input({**row, "modality": "MR", "window": "percentile(0.5-99.5)"}, values, None).physical
    assert not expert_input({**row, "values_path": None, "window": "ct:abdomen(40/400)"}, values, None).physical
