"""Expert models turned into ROI candidates: load a resolved registry entry, run it on one image.

An :class:`Expert` reads one image (:class:`ExpertInput`: physical values, spacing, orientation,
metadata organ) and returns a :class:`Reading`: labelled masks, the body region it measured, image
measurements, and a note when it declined. Built-in experts are rules (:mod:`roi.builtin`); torch
models (TorchScript files) share one preprocessing path: intensity window (or percentile scaling),
resize to the trained size, one forward pass, probabilities resized back to the image grid. MONAI
bundles run per volume (:mod:`roi.bundle`). Torch and MONAI are imported inside functions: the
Dagster layer stays light.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from medtrinity_assets.roi.builtin import ExpertInput, Reading
from medtrinity_assets.roi.ground_truth import Candidate, label_kind
from medtrinity_assets.roi.registry import ResolvedModel


class ModelLoadError(RuntimeError):
    """A registered model that resolved but cannot be loaded or run."""


class Expert:
    """One loaded model; its candidates carry ``origin = expert:<name>@<version>``."""

    def __init__(self, model: ResolvedModel):
        self.model = model

    def read(self, inp: ExpertInput) -> Reading:
        raise NotImplementedError

    def candidates(self, reading: Reading) -> list[Candidate]:
        """The reading's masks as candidates: kind from the reading (else by name), confidence from the
        reading (a per-image probability) or else the registry's measured per-label score (else NaN)."""
        out = []
        for name, mask in reading.masks.items():
            if mask is None or not mask.any():
                continue
            kind = reading.kinds.get(name) or self.default_kind(name)
            conf = reading.confidence.get(name, self.model.confidence.get(name, math.nan))
            out.append(Candidate(name, kind, self.model.origin, mask, confidence=float(conf), digest=self.model.sha256))
        return out

    def default_kind(self, name: str) -> str:
        return label_kind(name)

    def predict(self, values: np.ndarray, modality: str, px_mm: float = 1.0, organ: str | None = None) -> list[Candidate]:
        """Candidates for a bare value image (tests and tools; the ROI stage calls :meth:`read`)."""
        inp = ExpertInput(np.asarray(values, np.float32), modality or "", organ or "", px_mm, True)
        return self.candidates(self.read(inp))


class BuiltinExpert(Expert):
    """A rule-based expert of :mod:`roi.builtin`; everything it outlines is anatomy (or a frame), never a finding."""

    def __init__(self, model: ResolvedModel, module):
        super().__init__(model)
        self.module = module

    def read(self, inp: ExpertInput) -> Reading:
        return self.module.read(inp)

    def default_kind(self, name: str) -> str:
        return "anatomy"


def scale_input(values: np.ndarray, preprocess: dict[str, Any]) -> np.ndarray:
    """Values -> float32 in [0, 1]: a fixed window when given (CT HU), else the 1-99 percentile range."""
    v = values.astype(np.float32)
    window = preprocess.get("window")
    if window:
        lo, hi = float(window[0]), float(window[1])
    else:
        lo, hi = (float(x) for x in np.percentile(v, [1, 99]))
    return np.clip((v - lo) / max(hi - lo, 1e-6), 0.0, 1.0)


class TorchSegmenter(Expert):
    """A 2D segmentation network: input (1, 1, h, w) in [0, 1], output (1, C, h, w) logits."""

    def __init__(self, model: ResolvedModel, net: Callable):
        super().__init__(model)
        self.net = net

    def probabilities(self, values: np.ndarray) -> np.ndarray:
        """(C, H, W) probabilities on the image grid (sigmoid for one channel, softmax otherwise)."""
        import torch
        import torch.nn.functional as F

        pre = self.model.preprocess
        x = torch.from_numpy(scale_input(values, pre))[None, None]
        h, w = values.shape
        size = pre.get("size")
        if size:
            x = F.interpolate(x, size=(int(size[0]), int(size[1])), mode="bilinear", align_corners=False)
        else:  # keep the grid, padded to a multiple of 16 for the U-Net's poolings
            ph, pw = (-h) % 16, (-w) % 16
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        with torch.no_grad():
            out = self.net(x)
        if isinstance(out, (list, tuple)):
            out = out[0]
        if not size:
            out = out[..., :h, :w]
        if out.ndim != 4:
            raise ModelLoadError(f"model {self.model.name}: output shape {tuple(out.shape)} is not (1, C, H, W)")
        prob = torch.sigmoid(out) if out.shape[1] == 1 else torch.softmax(out, dim=1)
        prob = F.interpolate(prob, size=(h, w), mode="bilinear", align_corners=False)
        return prob[0].numpy()

    def read(self, inp: ExpertInput) -> Reading:
        window = self.model.preprocess.get("window")
        if window and not inp.physical:
            # a fixed input window means the network learnt physical units (HU): on the grey levels of a PNG or
            # a screen capture it segments display contrast, not tissue
            return Reading(note=f"model {self.model.name} takes physical values windowed to [{window[0]}, {window[1]}]; "
                                "this image holds display grey levels, so it was not run")
        prob = self.probabilities(inp.values)
        labels = self.model.labels or ({1: "lesion"} if prob.shape[0] == 1 else {c: f"class_{c}" for c in range(1, prob.shape[0])})
        reading = Reading()
        if prob.shape[0] == 1:
            masks = {1: prob[0] >= self.model.threshold}
            probs = {1: prob[0]}
        else:
            arg = prob.argmax(axis=0)
            masks = {c: (arg == c) & (prob[c] >= self.model.threshold) for c in range(1, prob.shape[0])}
            probs = {c: prob[c] for c in range(1, prob.shape[0])}
        for channel, mask in masks.items():
            if channel not in labels or not mask.any():
                continue
            name = labels[channel]
            reading.masks[name] = mask
            reading.confidence[name] = float(probs[channel][mask].mean())  # mean probability inside the mask
        return reading


def _load_torchscript(model: ResolvedModel):
    import torch

    net = torch.jit.load(str(model.path), map_location="cpu")
    net.eval()
    return net


def load_expert(model: ResolvedModel):
    """A runnable expert for a resolved, error-free registry entry (a :class:`roi.bundle.BundleExpert` for
    MONAI bundles, which run per volume; an :class:`Expert` for everything else)."""
    if not model.ok:
        raise ModelLoadError(model.error or f"model {model.name} did not resolve")
    try:
        if model.kind == "builtin":
            from medtrinity_assets.roi.registry import builtin_module

            return BuiltinExpert(model, builtin_module(model.builtin or ""))
        if model.kind == "torchscript":
            return TorchSegmenter(model, _load_torchscript(model))
        if model.kind == "monai_bundle":  # a volume-level expert: run per volume by the ROI stage
            from medtrinity_assets.roi.bundle import BundleExpert

            return BundleExpert(model)
    except ModelLoadError:
        raise
    except ValueError as exc:  # refused (untrusted bundle, changed files) or unusable
        raise ModelLoadError(f"model {model.name}: {getattr(exc, 'reason', exc)}") from None
    except Exception as exc:  # a corrupt file, a config that does not build: say which model and why
        raise ModelLoadError(f"model {model.name} ({model.kind}, {model.path}): cannot load: {type(exc).__name__}: {exc}") from None
    raise ModelLoadError(f"model {model.name}: unknown kind {model.kind!r}")


