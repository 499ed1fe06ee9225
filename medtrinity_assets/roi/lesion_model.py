"""The pipeline's own lesion segmenter: a small MONAI 2D U-Net trained on labelled CT volumes.

Data comes from an injected :data:`VolumeSource`: a callable ``(seed, index) -> (volume in HU (Z, H, W),
lesion mask (Z, H, W))``, named in the config as ``rois.lesion_model.data: "package.module:function"``
and given to :func:`train` by the caller. This module never chooses its data: the demo wires the
synthetic phantom (``medtrinity_assets.demo.phantom:lesion_training_volume``), a user wires their own
labelled volumes. Training volumes ``train_indices`` and held-out volumes ``eval_indices`` of one seed
are disjoint by construction. Every slice holding a lesion plus as many lesion-free slices.

Input: HU windowed to [-250, 250] -> [0, 1] on the training volumes' in-plane grid (the registry
entry's ``preprocess`` records it: 128 x 128 for the demo's phantoms), one sigmoid output channel "lesion". Training is seeded, single-process and
a fixed number of steps, so the same settings give the same weights; the version is a digest of
the weights, so retraining that changes them is a model update and one that does not is not.
Exported as TorchScript (``torch.jit.trace``) and registered with ``registration.json``.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# (seed, index) -> (volume in HU, float (Z, H, W); lesion mask, bool (Z, H, W))
VolumeSource = Callable[[int, int], tuple[np.ndarray, np.ndarray]]
WINDOW = (-250.0, 250.0)


@dataclass(frozen=True)
class TrainSettings:
    seed: int = 7
    train_indices: tuple[int, ...] = tuple(range(0, 24))
    eval_indices: tuple[int, ...] = tuple(range(1000, 1006))
    steps: int = 1500
    batch_size: int = 16
    patch: int = 48  # training crops (fully convolutional: inference runs on the whole 128 x 128 slice)
    p_lesion_patch: float = 0.6  # share of crops centred near a lesion pixel (lesions are <1 % of pixels)
    learning_rate: float = 1e-2
    channels: tuple[int, ...] = (16, 32, 64, 128)
    threads: int = 2
    # where the labelled volumes come from: "package.module:function" (a VolumeSource); None = not configured
    data: str | None = None


def load_volume_source(spec: str | None) -> VolumeSource:
    """The training-data callable a config names (``"package.module:function"``)."""
    if not spec:
        raise ValueError("rois.lesion_model.data is not set: name the labelled training volumes as "
                         "'package.module:function' (the demo uses medtrinity_assets.demo.phantom:lesion_training_volume)")
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"rois.lesion_model.data {spec!r}: expected 'package.module:function'")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"rois.lesion_model.data {spec!r}: cannot import it ({exc})") from None
    if not callable(fn):
        raise ValueError(f"rois.lesion_model.data {spec!r} is not callable")
    return fn


@dataclass
class TrainResult:
    version: str
    weights_path: Path
    sha256: str
    metrics: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def scale(hu: np.ndarray) -> np.ndarray:
    lo, hi = WINDOW
    return np.clip((hu - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def slices_of(data: VolumeSource, seed: int, indices: tuple[int, ...], rng: np.random.Generator | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1, H, W) scaled inputs and (N, 1, H, W) binary lesion targets.

    With ``rng``: lesion slices plus as many random lesion-free ones; without: every slice (evaluation)."""
    xs, ys = [], []
    for i in indices:
        volume_hu, target = data(seed, i)
        volume_hu, target = np.asarray(volume_hu, np.float32), np.asarray(target, bool)
        if volume_hu.ndim != 3 or target.shape != volume_hu.shape:
            raise ValueError(f"training volume {i}: shapes {volume_hu.shape} and {target.shape}; expected equal (Z, H, W)")
        has = target.any(axis=(1, 2))
        if rng is None:
            chosen = np.arange(len(has))
        else:
            pos, neg = np.flatnonzero(has), np.flatnonzero(~has)
            chosen = np.concatenate([pos, rng.choice(neg, size=min(len(neg), len(pos)), replace=False)])
        xs.append(scale(volume_hu[chosen]))
        ys.append(target[chosen].astype(np.float32))
    return np.concatenate(xs)[:, None], np.concatenate(ys)[:, None]


def _crops(x: np.ndarray, y: np.ndarray, settings: TrainSettings, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A batch of ``patch``-sized crops, most of them around a lesion pixel (class balance without weights)."""
    n, _, h, w = x.shape
    p = settings.patch
    xb = np.empty((settings.batch_size, 1, p, p), np.float32)
    yb = np.empty_like(xb)
    for b in range(settings.batch_size):
        i = int(rng.integers(n))
        lesion = np.argwhere(y[i, 0] > 0)
        if len(lesion) and rng.random() < settings.p_lesion_patch:
            cy, cx = lesion[rng.integers(len(lesion))] + rng.integers(-p // 3, p // 3 + 1, size=2)
        else:
            cy, cx = rng.integers(0, h), rng.integers(0, w)
        y0 = int(np.clip(cy - p // 2, 0, h - p))
        x0 = int(np.clip(cx - p // 2, 0, w - p))
        xb[b], yb[b] = x[i, :, y0 : y0 + p, x0 : x0 + p], y[i, :, y0 : y0 + p, x0 : x0 + p]
    return xb, yb


def build_network(channels: tuple[int, ...], prior: float = 0.05):
    """MONAI 2D U-Net; the last convolution's bias starts at the lesion prior's logit.

    Without it the network starts at p = 0.5 everywhere and Adam, which moves each weight by about
    the learning rate per step, spends hundreds of steps just learning that most pixels are background."""
    import math

    import torch
    from monai.networks.nets import UNet

    # batch norm, not MONAI's default instance norm: instance statistics of a 48 px training crop differ
    # from those of a whole slice, so an instance-normed net trained on crops misfires on full slices
    net = UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=channels,
               strides=tuple(2 for _ in channels[1:]), num_res_units=1, norm="batch")
    last = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
    with torch.no_grad():
        last.bias.fill_(math.log(prior / (1 - prior)))
    return net


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice over all pixels given (global, not averaged per slice): 2TP / (|pred| + |truth|)."""
    denom = float(pred.sum() + truth.sum())
    return 1.0 if denom == 0 else 2.0 * float((pred & truth).sum()) / denom


def evaluate(net, settings: TrainSettings, data: VolumeSource, threshold: float = 0.5) -> dict[str, Any]:
    """Dice on the held-out volumes (every slice), and false-positive pixels on lesion-free slices."""
    import torch

    x, y = slices_of(data, settings.seed, settings.eval_indices, None)
    preds = []
    with torch.no_grad():
        for start in range(0, len(x), 32):
            preds.append(torch.sigmoid(net(torch.from_numpy(x[start : start + 32]))).numpy())
    pred = np.concatenate(preds) >= threshold
    truth = y >= 0.5
    lesion_slices = truth.any(axis=(1, 2, 3))
    return {
        "dice_heldout": round(dice(pred, truth), 4),
        "dice_heldout_lesion_slices": round(dice(pred[lesion_slices], truth[lesion_slices]), 4),
        "heldout_volumes": len(settings.eval_indices),
        "heldout_slices": int(len(x)),
        "false_positive_pixels_on_clean_slices": int(pred[~lesion_slices].sum()),
    }


def weights_digest(net) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        h.update(name.encode() + b"\0")
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def train(settings: TrainSettings, out_dir: Path, data: VolumeSource | None = None, log=print) -> TrainResult:
    """Train on ``data`` (default: the callable ``settings.data`` names), evaluate on held-out volumes,
    export TorchScript to ``out_dir`` and register it."""
    import torch
    from monai.losses import DiceCELoss

    from medtrinity_assets.roi.registry import sha256_file, write_registration
    from medtrinity_assets.storage import atomic_write_bytes

    t0 = time.perf_counter()
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    rng = np.random.default_rng(settings.seed)
    data = data if data is not None else load_volume_source(settings.data)
    x, y = slices_of(data, settings.seed, settings.train_indices, rng)
    t_data = time.perf_counter() - t0
    net = build_network(settings.channels)
    opt = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.steps)
    loss_fn = DiceCELoss(sigmoid=True, batch=True)
    net.train()
    losses = []
    for step in range(settings.steps):
        xb, yb = (torch.from_numpy(a) for a in _crops(x, y, settings, rng))
        if step % 2:  # mirror half the batches: the network must not learn a side
            xb, yb = xb.flip(-1), yb.flip(-1)
        opt.zero_grad()
        loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == settings.steps - 1:
            log(f"lesion_model step {step}/{settings.steps} loss {np.mean(losses[-50:]):.4f}")
    t_train = time.perf_counter() - t0 - t_data
    net.eval()
    metrics = evaluate(net, settings, data)
    metrics.update({"train_slices": int(len(x)), "train_volumes": len(settings.train_indices),
                    "final_loss": round(float(np.mean(losses[-25:])), 4), "seconds_data": round(t_data, 1),
                    "seconds_train": round(t_train, 1)})
    version = weights_digest(net)[:12]
    size = tuple(int(v) for v in x.shape[-2:])  # the grid the network was trained on; inference resizes to it
    traced = torch.jit.trace(net, torch.zeros(1, 1, *size))
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"model-{version}.ts"
    tmp = out_dir / f".{name}.tmp"
    torch.jit.save(traced, str(tmp))
    atomic_write_bytes(out_dir / name, tmp.read_bytes())
    tmp.unlink()
    digest = sha256_file(out_dir / name)
    write_registration(out_dir, name, version, digest, labels={1: "lesion"},
                       preprocess={"window": list(WINDOW), "size": list(size)}, metrics=metrics)
    log(f"lesion_model {version}: {metrics}")
    return TrainResult(version, out_dir / name, digest, metrics, asdict(settings))
