"""Slices per second of the ``images`` ingest path against a bare loop over the same files.

Pipeline: ``medtrinity_assets.ingest.build_images`` (scan, reader with canonical orientation and
validation, GT label maps, slice selection, windowing, resize, PNG + values .npy + label PNG,
perceptual hash, content-addressed blobs, Arrow rows). Bare loop: the library calls a script would
make for the very same slices -- nibabel/pydicom read, fixed window, Pillow resize, PNG written to a
file -- and nothing else. Both run in one process, alternately, on the demo data built offline;
the ratio (pipeline slices/s / bare slices/s) is what the issue tracks (target >= 0.8).

Run: ``python -m benchmarks.bench_ingest [--quick]``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CT_ABDOMEN = (50.0, 400.0)
CT_SOFT = (40.0, 400.0)


def _write_config(root: Path, demo: Path, sources: list[str]) -> Path:
    entries = {
        "phantom_ct": {"format": "nifti", "path": str(demo / "phantom_ct/images"),
                       "labels": str(demo / "phantom_ct/labels"), "labels_csv": str(demo / "phantom_ct/labels.csv"),
                       "modality": "CT", "organ": "abdomen",
                       "label_names": {1: "liver", 2: "spleen", 3: "kidney", 4: "lung", 5: "bone", 10: "liver tumour",
                                       11: "liver cyst", 12: "kidney cyst", 13: "lung nodule", 14: "spleen lesion",
                                       15: "hyperdense liver lesion"}},
        "brain_mr": {"format": "nifti", "path": str(demo / "brain_mr"), "modality": "MR", "organ": "brain"},
        "pydicom_real": {"format": "dicom", "path": str(demo / "pydicom_real")},
    }
    import yaml

    doc = {"data_root": str(root / "out"), "shards": 1, "salt": "bench", "max_side": 512, "context_slices": 3,
           "sources": [{"name": n, "roi": "none", "licence": "bench", **entries[n]} for n in sources]}
    path = root / "bench.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the bare loop


def _window(values: np.ndarray, centre: float, width: float) -> np.ndarray:
    lo = centre - width / 2
    return np.clip((values - lo) * (255.0 / width), 0, 255).astype(np.uint8)


def _percentile(values: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(values, [0.5, 99.5])
    return _window(values, (lo + hi) / 2, max(hi - lo, 1e-6))


def _resize(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    s = max_side / max(h, w)
    return np.asarray(Image.fromarray(img).resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR))


def _png(img: np.ndarray, path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", compress_level=6)
    path.write_bytes(buf.getvalue())


def _bare_read(path: Path, fmt: str, modality: str) -> tuple[np.ndarray, str]:
    """(array, kind) with kind in volume_ct / volume / rgb / grey / grey_ct."""
    if fmt == "nifti":
        import nibabel as nib

        img = nib.as_closest_canonical(nib.load(str(path)))
        data = np.asarray(img.dataobj, dtype=np.float32)
        if data.ndim == 4:
            data = data[..., 0]
        return np.transpose(data, (2, 1, 0)), ("volume_ct" if modality == "CT" else "volume")
    import pydicom

    ds = pydicom.dcmread(str(path))
    arr = ds.pixel_array
    if ds.get("SamplesPerPixel", 1) == 3:
        return arr.astype(np.uint8), "rgb"
    arr = arr.astype(np.float32) * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
    ct = ds.get("Modality") == "CT"
    if arr.ndim == 3:
        return arr, "volume_ct" if ct else "volume"
    return arr, "grey_ct" if ct else "grey"


def _bare_item(path: Path, fmt: str, modality: str, slice_indices: list[int], out: Path, max_side: int) -> int:
    arr, kind = _bare_read(path, fmt, modality)
    n = 0
    if kind.startswith("volume"):
        for z in slice_indices:
            z = min(max(z, 0), arr.shape[0] - 1)
            s = arr[z]
            img = _window(s, *CT_ABDOMEN) if kind == "volume_ct" else _percentile(s)
            _png(_resize(img, max_side), out / f"{path.stem}_{z}.png")
            n += 1
        return n
    if kind == "rgb":
        img = arr if arr.ndim == 3 and arr.shape[-1] == 3 else arr[0]
    else:
        img = _window(arr, *CT_SOFT) if kind == "grey_ct" else _percentile(arr)
    _png(_resize(img, max_side), out / f"{path.stem}.png")
    return 1


# ---------------------------------------------------------------- where the pipeline's time goes


def _stage_times(cfg) -> dict[str, float]:
    """One extra pass timing the pipeline's pieces on their own (no blob writes): header scan,
    reader load, ``item_to_slices``, and encoding of PNG/npy/label PNG. The rest of the pipeline's
    time is storage (content-addressed writes) and row building."""
    from medtrinity_assets.formats.base import get_reader
    from medtrinity_assets.ingest import scan_source
    from medtrinity_assets.preprocess.encode import encode_label_png, encode_png, encode_values
    from medtrinity_assets.preprocess.item_images import item_to_slices

    acc = {"scan": 0.0, "load": 0.0, "item_to_slices": 0.0, "encode": 0.0}
    for src in cfg.sources:
        t = time.perf_counter()
        items = scan_source(src, salt="bench", shards=cfg.shards).items
        acc["scan"] += time.perf_counter() - t
        reader = get_reader(src.format)
        for s in items:
            t = time.perf_counter()
            item = reader.load(src, s.ref)
            acc["load"] += time.perf_counter() - t
            t = time.perf_counter()
            slices = item_to_slices(item, max_side=cfg.max_side, context_slices=cfg.context_slices,
                                    organ=item.organ or src.organ)
            acc["item_to_slices"] += time.perf_counter() - t
            t = time.perf_counter()
            for sl in slices:
                encode_png(sl.image)
                if sl.values is not None:
                    encode_values(sl.values)
                if sl.label_map is not None:
                    encode_label_png(sl.label_map)
            acc["encode"] += time.perf_counter() - t
    return {k: round(v, 3) for k, v in acc.items()}


# ---------------------------------------------------------------- driver


def main(quick: bool = True) -> dict[str, Any]:
    from medtrinity_assets.config import load_config
    from medtrinity_assets.demo.build import build_demo
    from medtrinity_assets.ingest import build_images, scan_source
    from medtrinity_assets.storage import DataLayout

    sources = ["phantom_ct", "pydicom_real"] if quick else ["phantom_ct", "brain_mr", "pydicom_real"]
    repeats = 3
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = Path(tmp)
        demo = root / "demo"
        build_demo(demo, n_phantoms=8)
        cfg = load_config(_write_config(root, demo, sources))

        # what the pipeline emits per item, so the bare loop makes exactly the same slices
        plan: list[tuple[Path, str, str, list[int]]] = []
        warm = DataLayout(root / "warm")
        for src in cfg.sources:
            res = build_images(cfg, src, "s00", warm, salt="bench")
            by_item: dict[str, list[int]] = defaultdict(list)
            for row in res.table.select(["item_key", "slice_index"]).to_pylist():
                by_item[row["item_key"]].append(row["slice_index"])
            for s in scan_source(src, salt="bench", shards=cfg.shards).items:
                if s.item_key in by_item:
                    rel = s.ref.locator.get("image") or s.ref.locator.get("files", [None])[0] \
                        or s.ref.locator.get("file") or s.ref.locator.get("path")
                    plan.append((Path(src.path) / rel, src.format, src.modality or "", by_item[s.item_key]))

        pipe_times, single_times, bare_times, pipe_slices, bare_slices = [], [], [], 0, 0
        for r in range(repeats):
            layout = DataLayout(root / f"pipe{r}")
            t = time.perf_counter()
            pipe_slices = sum(build_images(cfg, src, "s00", layout, salt="bench").slices for src in cfg.sources)
            pipe_times.append(time.perf_counter() - t)
            layout = DataLayout(root / f"single{r}")
            t = time.perf_counter()
            sum(build_images(cfg, src, "s00", layout, salt="bench", workers=1).slices for src in cfg.sources)
            single_times.append(time.perf_counter() - t)
            out = root / f"bare{r}"
            out.mkdir()
            t = time.perf_counter()
            bare_slices = sum(_bare_item(p, fmt, mod, idx, out, cfg.max_side) for p, fmt, mod, idx in plan)
            bare_times.append(time.perf_counter() - t)

            stages = _stage_times(cfg)

    from medtrinity_assets.ingest import default_workers

    pipe_rate = pipe_slices / statistics.median(pipe_times)
    single_rate = pipe_slices / statistics.median(single_times)
    bare_rate = bare_slices / statistics.median(bare_times)
    return {
        "sources": sources,
        "items": len(plan),
        "slices_pipeline": pipe_slices,
        "slices_bare": bare_slices,
        "pipeline_slices_per_s": round(pipe_rate, 1),
        "bare_slices_per_s": round(bare_rate, 1),
        "ratio": round(pipe_rate / bare_rate, 3),
        # the pipeline decodes/encodes items on a thread pool; the bare loop is one thread. The
        # single-thread ratio shows what the extra work (label maps, values, hashes) costs per core.
        "workers": default_workers(),
        "single_thread_slices_per_s": round(single_rate, 1),
        "single_thread_ratio": round(single_rate / bare_rate, 3),
        "repeats": repeats,
        "pipeline_seconds": round(statistics.median(pipe_times), 3),
        "bare_seconds": round(statistics.median(bare_times), 3),
        "stage_seconds": stages,
        "target": 0.8,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="phantom_ct + pydicom_real (skip brain_mr)")
    result = main(quick=ap.parse_args().quick)
    json.dump(result, sys.stdout, indent=1)
    print()
