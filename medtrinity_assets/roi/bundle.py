"""MONAI bundles run as their authors meant: the bundle's own inference config, on the whole volume.

A MONAI Model Zoo bundle says how it must be run in ``configs/inference.json`` (or ``.yaml``): its
preprocessing (load, orientation, spacing, intensity scaling), its inferer (often a 3D sliding window),
its postprocessing (activation, inverting the spatial transforms, argmax, saving). Using only its
``network_def`` with our own 2D windowing would give wrong masks, so :class:`BundleExpert` runs the
whole config through ``monai.bundle.ConfigWorkflow`` with three overrides -- the input file (``datalist``
and ``dataset#data``), the output folder (``output_dir``) and the bundle's own folder (``bundle_root``)
-- reads back the label volume its postprocessing saved, and the ROI stage slices it like our images
(:mod:`roi.volumes`). Label names come from the bundle's metadata (``network_data_format.outputs.pred.
channel_def``) unless the registry entry names them.

A bundle's config is code: ``$`` expressions are evaluated as Python and ``_target_`` may name any
importable callable (``os.system`` included). So a bundle runs only when its registry entry says
``trusted: true`` and pins the ``sha256`` of the folder, and the folder still has that digest; the
registry refuses it otherwise (:mod:`roi.registry`), before anything in it is parsed.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from medtrinity_assets.roi.registry import ResolvedModel, check_runnable, sha256_tree
from medtrinity_assets.roi.volumes import VolumeError, check_alignment, read_label_volume

CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml")


def bundle_config(folder: Path) -> Path:
    config = next((folder / "configs" / n for n in CONFIG_NAMES if (folder / "configs" / n).is_file()), None)
    if config is None:
        raise VolumeError("bundle_unusable", f"{folder}: no configs/inference.json or inference.yaml")
    return config


def channel_names(folder: Path) -> dict[int, str]:
    """Output channel -> name from the bundle's metadata (plain JSON: reading it executes nothing)."""
    meta = folder / "configs" / "metadata.json"
    if not meta.is_file():
        return {}
    data = json.loads(meta.read_text(encoding="utf-8"))
    pred = ((data.get("network_data_format") or {}).get("outputs") or {}).get("pred") or {}
    names = pred.get("channel_def") or {}
    return {int(k): str(v) for k, v in names.items() if int(k) != 0 and str(v).lower() != "background"}


def _weights_are_tensors(folder: Path) -> None:
    """Every ``models/*.pt`` must load with ``weights_only=True``: tensors, not pickled Python objects (even a
    trusted bundle's weights file is refused when it carries a payload)."""
    import torch

    for pt in sorted((folder / "models").glob("*.pt")):
        try:
            torch.load(str(pt), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise VolumeError("bundle_refused", f"{pt.name} holds Python objects, not only tensors "
                                                f"(weights_only loading refused it: {type(exc).__name__}); "
                                                "re-save it as a state dict") from None


class BundleExpert:
    """One trusted MONAI bundle, run per volume through its own inference workflow."""

    def __init__(self, model: ResolvedModel):
        check_runnable(model)
        self.model = model
        self.folder = Path(model.path)
        if sha256_tree(self.folder) != model.sha256:  # changed since the registry resolved it
            raise VolumeError("bundle_refused", f"bundle {model.name}: its files changed after the registry pinned them")
        self.config = bundle_config(self.folder)
        self.names = dict(model.labels) or channel_names(self.folder)
        _weights_are_tensors(self.folder)

    def run(self, image_file: Path, out_dir: Path) -> Path:
        """Run the bundle's inference config on one image file; the label file its postprocessing saved."""
        from monai.bundle import ConfigWorkflow

        out_dir.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "configs" / "metadata.json"
        image = str(image_file)
        workflow = ConfigWorkflow(
            config_file=str(self.config), meta_file=str(meta) if meta.is_file() else None, logging_file=False,
            workflow_type="infer", bundle_root=str(self.folder), output_dir=str(out_dir),
            datalist=[image], **{"dataset#data": [{"image": image}]},
        )
        workflow.initialize()
        try:
            workflow.run()
        finally:
            workflow.finalize()
        saved = sorted(p for p in out_dir.rglob("*") if p.name.endswith((".nii.gz", ".nii")))
        if len(saved) != 1:
            raise VolumeError("bundle_output", f"bundle {self.model.name} saved {len(saved)} NIfTI files for one volume; "
                                               "its postprocessing must save exactly one label file (SaveImaged)")
        return saved[0]

    def labels_for(self, image_file: Path, rows: list[dict]) -> tuple[np.ndarray, dict[int, str]]:
        """The volume's label map in canonical (Z, H, W) order (checked against the image rows) and its names."""
        with tempfile.TemporaryDirectory(prefix="bundle_") as tmp:
            saved = self.run(image_file, Path(tmp) / "out")
            labels, spacing = read_label_volume(saved)
        check_alignment(labels, spacing, rows, f"bundle {self.model.name}'s output (is Invertd in its postprocessing?)")
        names = dict(self.names)
        for v in np.unique(labels):
            if int(v) != 0 and int(v) not in names:
                names[int(v)] = f"class_{int(v)}"
        return labels, names
