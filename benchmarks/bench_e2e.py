"""End-to-end benchmark on realistic volumes: every stage, seconds per 1,000 slices, peak memory, 25M projection.

Input: generated abdominal CT volumes at full size (512 x 512 in-plane, 0.75 mm pixels, 2.5 mm slices)
written as NIfTI with a label map: a liver (label 1) and one lesion in it (label 2) per volume, plus
body, subcutaneous fat, spine and lung bases, with scanner noise. Full mode: 32 volumes x 80 slices
(what issue 16 measured); quick mode (``make bench``): 4 volumes x 32 slices.

The pipeline runs as a user runs it: ``medtrinity run --stages <stage>`` in a fresh process per stage
(ingest, rois, knowledge, triplets, quality, exports), one source and one shard, so every slice lands
in one partition. Per stage:

- ``step_s``: the stage's assets' step time from Dagster's own step stats (what the work costs);
- ``s_per_1000_slices``: ``step_s`` per 1,000 ingested slices;
- ``wall_s``: the process's wall time (imports, Dagster start-up, catalog refresh included);
- ``peak_rss_mb``: the stage process's peak resident memory (``os.wait4``).

``rois_vs_images``: seconds per slice of ``rois`` over ``images``, same machine, same run (target <= 1).
``memory``: ``images`` and ``rois`` rerun on a partition of half the volumes; the peak memory at both
sizes says whether memory stays flat as partitions grow. ``export_pixel_check``: what the export PHI
checks' OCR read (at risk, the sample of the rest, the stated bound), OCR reads over the five formats
(cache hits excluded) and seconds per read. ``projection_25m``: per-stage core-hours for 25M slices from
the measured per-slice step times (the processes here are single-core except ingest's thread pool; wall
time of one process is counted as one core -- pessimistic on a shared machine); the exports stage's OCR
is projected per read, not per slice (see :func:`project`).

Run: ``python -m benchmarks.bench_e2e [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PIXEL_MM, SLICE_MM = 0.75, 2.5
# assets whose cost does not grow with the slices (a corpus index, a model registry, a trained model)
ONE_TIME = frozenset({"knowledge_corpus", "knowledge_index", "expert_models", "lesion_model"})


def stages() -> tuple[str, ...]:
    """The CLI's stages (the asset groups), in pipeline order."""
    from medtrinity_assets.cli import stage_names

    return tuple(stage_names())


def asset_stages(stage_list: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """op name (what a step is called) -> (asset name, its CLI stage = its asset group)."""
    from medtrinity_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    out = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        group = node.group_name or "other"
        out[node.assets_def.node_def.name] = (key.to_user_string(), group if group in stage_list else "other")
    return out


def attribute(steps: dict[str, float], ops: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """step key -> (asset, stage): an asset's own step, or one of its checks (``<asset>_<check>``)."""
    by_asset = {asset: stage for asset, stage in ops.values()}
    out = {}
    for step in steps:
        if step in ops:
            out[step] = ops[step]
            continue
        asset = max((a for a in by_asset if step.startswith(a + "_")), key=len, default="")
        out[step] = (asset, by_asset.get(asset, "other"))
    return out


# ---------------------------------------------------------------------------------- inputs


def make_volume(index: int, n_slices: int, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """One abdominal CT volume in HU (Z, Y, X) and its label map (1 liver, 2 lesion), canonical LPS order.

    Sizes are in mm (an adult trunk ~33 x 24 cm); the liver spans ~75 % of the slices and holds one
    10-30 mm lesion; the upper 15 % of slices cut the lung bases."""
    rng = np.random.default_rng((2024, index))
    mm = PIXEL_MM
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = size / 2 + rng.uniform(-8, 8), size / 2 + rng.uniform(-8, 8)
    ry, rx = 120 / mm * rng.uniform(0.95, 1.05), 165 / mm * rng.uniform(0.95, 1.05)
    body = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    inner = ((yy - cy) / (ry - 15 / mm)) ** 2 + ((xx - cx) / (rx - 15 / mm)) ** 2 <= 1
    spine = (yy - (cy + 80 / mm)) ** 2 + (xx - cx) ** 2 <= (18 / mm) ** 2
    lcy, lcx = cy - 10 / mm, cx - 70 / mm  # the liver on the patient's right = image left (LPS columns)
    vol = np.full((n_slices, size, size), -1000.0, np.float32)
    lab = np.zeros((n_slices, size, size), np.uint8)
    z_liver = (int(0.1 * n_slices), int(0.85 * n_slices))
    z_lung = int(0.85 * n_slices)
    zc = (z_liver[0] + z_liver[1]) / 2
    lesion_z = int(rng.integers(z_liver[0] + 4, z_liver[1] - 4))
    lesion_r = rng.uniform(5, 15) / mm
    ly, lx = lcy + rng.uniform(-25, 25) / mm, lcx + rng.uniform(-25, 25) / mm
    for z in range(n_slices):
        sl = vol[z]
        sl[body] = -100.0
        sl[inner] = 40.0
        sl[spine] = 400.0
        if z >= z_lung:
            for side in (-1, 1):
                lung = ((yy - (cy - 5 / mm)) / (70 / mm)) ** 2 + ((xx - (cx + side * 75 / mm)) / (55 / mm)) ** 2 <= 1
                sl[lung & inner] = -850.0
                lab[z][lung & inner] = 0
        if z_liver[0] <= z < z_liver[1]:
            k = max(1 - ((z - zc) / ((z_liver[1] - z_liver[0]) / 2)) ** 2, 0.15) ** 0.5
            liver = ((yy - lcy) / (95 / mm * k)) ** 2 + ((xx - lcx) / (80 / mm * k)) ** 2 <= 1
            liver &= inner
            sl[liver] = 60.0
            lab[z][liver] = 1
            dz = (z - lesion_z) * SLICE_MM / mm
            if abs(dz) < lesion_r:
                rr = (lesion_r**2 - dz**2) ** 0.5
                lesion = ((yy - ly) ** 2 + (xx - lx) ** 2 <= rr**2) & liver
                sl[lesion] = 20.0
                lab[z][lesion] = 2
    vol += rng.normal(0.0, 10.0, vol.shape).astype(np.float32)
    return vol, lab


def write_inputs(root: Path, n_volumes: int, n_slices: int, context_slices: int = 3) -> Path:
    """NIfTI volumes + label maps (uncompressed int16 / uint8) and a sources YAML with one source, one shard."""
    import nibabel as nib
    import yaml

    aff = np.diag([-PIXEL_MM, -PIXEL_MM, SLICE_MM, 1.0])  # LPS voxel axes (x toward L, y toward P), z up
    for i in range(n_volumes):
        vol, lab = make_volume(i, n_slices)
        # (Z, Y, X) -> (X, Y, Z) on disk
        for folder, data in (("images", np.rint(vol).astype(np.int16)), ("labels", lab)):
            img = nib.Nifti1Image(np.ascontiguousarray(np.transpose(data, (2, 1, 0))), aff)
            img.set_qform(aff, code=1)
            img.set_sform(aff, code=1)
            (root / folder).mkdir(parents=True, exist_ok=True)
            nib.save(img, str(root / folder / f"ct_{i:03d}.nii"))
    cfg = {
        "data_root": "out", "shards": 1, "salt": "bench-e2e", "max_side": 512, "context_slices": context_slices,
        "models": str(REPO / "data" / "models.yaml"),
        "sources": [{"name": "abdomen_ct", "format": "nifti", "path": "images", "labels": "labels",
                     "label_names": {1: "liver", 2: "liver tumour"}, "modality": "CT", "organ": "abdomen",
                     "roi": "ground_truth", "licence": "CC0-1.0"}],
        "knowledge": {"corpora": [{"name": "core", "format": "core", "path": str(REPO / "data" / "knowledge")}]},
        "rois": {"label_kinds": {"liver": "anatomy"}},
        "generator": {"backend": "grounded", "seed": 0},
    }
    path = root / "sources.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------- running


def run_stage(cfg: Path, stage: str, env: dict[str, str]) -> dict[str, Any]:
    """``medtrinity run --stages <stage>`` in its own process: wall seconds, exit code, peak RSS."""
    cmd = [sys.executable, "-m", "medtrinity_assets.cli", "run", "--config", str(cfg), "--stages", stage, "--quiet"]
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    summary: dict[str, Any] = {}
    start = text.find("{")
    if start >= 0:
        try:
            summary = json.JSONDecoder().raw_decode(text[start:])[0]
        except json.JSONDecodeError:
            summary = {}
    failed = summary.get("failed_runs") or []
    problem = {"failed_runs": failed} if failed else {"tail": text.strip().splitlines()[-5:]}
    return {"wall_s": round(time.perf_counter() - t, 2), "exit_code": proc.returncode,
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), **(problem if proc.returncode else {})}


def step_seconds(dagster_home: Path) -> dict[str, float]:
    """Seconds per asset step over every run of the instance (Dagster's own step stats)."""
    from dagster import DagsterInstance

    out: dict[str, float] = {}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for rec in instance.get_run_records():
            for st in instance.get_run_step_stats(rec.dagster_run.run_id):
                if st.start_time and st.end_time:
                    out[st.step_key] = out.get(st.step_key, 0.0) + (st.end_time - st.start_time)
    return out


PIXEL_KEYS = ("pixel_ocr_seconds", "pixel_images_read", "pixel_cached", "pixel_at_risk_read", "pixel_not_at_risk",
              "pixel_not_at_risk_read", "pixel_sample_setting", "pixel_miss_rate_bound_95")


def export_pixel_checks(dagster_home: Path) -> dict[str, Any]:
    """The export PHI checks' pixel metadata (what the OCR read, how long it took), per check."""
    from dagster import DagsterEventType, DagsterInstance

    out: dict[str, Any] = {}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for rec in instance.get_run_records():
            for entry in instance.all_logs(rec.dagster_run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
                ev = entry.dagster_event.event_specific_data
                name = getattr(ev, "check_name", "")
                if not (name.startswith("export_") and name.endswith("_phi")):
                    continue
                meta = {k: getattr(v, "value", v) for k, v in (getattr(ev, "metadata", None) or {}).items()}
                out[name] = {k: meta.get(k) for k in PIXEL_KEYS}
    return out


def _slices(root: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(p).num_rows for p in (root / "out" / "tables" / "images").rglob("*.parquet"))


def run_pipeline(root: Path, stage_list: tuple[str, ...]) -> dict[str, Any]:
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    env = dict(os.environ, DAGSTER_HOME=str(home), PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO),
               DAGSTER_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    per_stage = {s: run_stage(root / "sources.yaml", s, env) for s in stage_list}
    return {"stages": per_stage, "steps": step_seconds(home), "slices": _slices(root),
            "pixel_checks": export_pixel_checks(home) if "exports" in stage_list else {}}


def per_core(root: Path) -> dict[str, Any]:
    """``images`` and ``rois`` of the same partition in this one process, CPU seconds per slice after a warm-up
    (imports and caches excluded): what each stage costs a core, free of thread pools and machine load."""
    from medtrinity_assets.ingest import build_images
    from medtrinity_assets.roi.build import RoiSettings, roi_partition
    from medtrinity_assets.settings import _load
    from medtrinity_assets.storage import DataLayout

    cfg = _load(str(root / "sources.yaml"))
    source = cfg.sources[0]
    layout = DataLayout(root / "per_core")
    settings = RoiSettings(label_kinds={"liver": "anatomy"})
    rows = build_images(cfg, source, "s00", layout, salt="bench", workers=1).table.to_pylist()  # warm-up
    roi_partition(rows[:4], layout, "ground_truth", [], settings)
    c = time.process_time()
    rows = build_images(cfg, source, "s00", layout, salt="bench", workers=1).table.to_pylist()
    images_cpu = time.process_time() - c
    c = time.process_time()
    result = roi_partition(rows, layout, "ground_truth", [], settings)
    rois_cpu = time.process_time() - c
    n = max(len(rows), 1)
    return {"slices": len(rows), "rois": len(result.rois),
            "images_cpu_ms_per_slice": round(1000 * images_cpu / n, 2),
            "rois_cpu_ms_per_slice": round(1000 * rois_cpu / n, 2),
            "rois_vs_images": round(rois_cpu / images_cpu, 3) if images_cpu else None}


def main(quick: bool = False) -> dict[str, Any]:
    n_volumes, n_slices, context = (4, 32, 12) if quick else (32, 80, 40)
    stage_list = stages()
    ops = asset_stages(stage_list)
    result: dict[str, Any] = {"volumes": n_volumes, "slices_per_volume": n_slices, "shape": [n_slices, 512, 512],
                              "pixel_mm": PIXEL_MM, "slice_mm": SLICE_MM, "context_slices": context}
    with tempfile.TemporaryDirectory(prefix="bench_e2e_") as tmp:
        root = Path(tmp) / "full"
        t = time.perf_counter()
        write_inputs(root, n_volumes, n_slices, context)
        result["generate_s"] = round(time.perf_counter() - t, 1)
        run = run_pipeline(root, stage_list)
        slices = run["slices"]
        result["ingested_slices"] = slices
        owner = attribute(run["steps"], ops)
        by_stage: dict[str, Any] = {}
        for stage in stage_list:
            mine = {k: v for k, v in run["steps"].items() if owner[k][1] == stage}
            scaling = sum(v for k, v in mine.items() if owner[k][0] not in ONE_TIME)
            by_stage[stage] = {**run["stages"][stage], "step_s": round(sum(mine.values()), 2),
                               "one_time_step_s": round(sum(mine.values()) - scaling, 2),
                               "s_per_1000_slices": round(1000 * scaling / max(slices, 1), 2)}
        result["stages"] = by_stage
        result["steps_s"] = {k: round(v, 2) for k, v in sorted(run["steps"].items())}
        images_s = run["steps"].get("images", 0.0)
        rois_s = run["steps"].get("rois", 0.0)
        result["rois_vs_images"] = round(rois_s / images_s, 3) if images_s else None
        result["images_s_per_1000_slices"] = round(1000 * images_s / max(slices, 1), 2)
        result["rois_s_per_1000_slices"] = round(1000 * rois_s / max(slices, 1), 2)
        result["export_pixel_check"] = pixel_summary(run["pixel_checks"], slices)
        result["per_core"] = per_core(root)

        # memory as partitions grow: the same stages on half the volumes
        half = Path(tmp) / "half"
        write_inputs(half, max(n_volumes // 2, 1), n_slices, context)
        small = run_pipeline(half, ("ingest", "rois"))
        m = {"slices": [small["slices"], slices],
             "images_peak_rss_mb": [small["stages"]["ingest"]["peak_rss_mb"], by_stage["ingest"]["peak_rss_mb"]],
             "rois_peak_rss_mb": [small["stages"]["rois"]["peak_rss_mb"], by_stage["rois"]["peak_rss_mb"]]}
        m["size_ratio"] = round(slices / max(small["slices"], 1), 2)
        for key in ("images", "rois"):
            a, b = m[f"{key}_peak_rss_mb"]
            m[f"{key}_peak_ratio"] = round(b / a, 3) if a else None  # peak at the larger size / at the smaller
        result["memory"] = m
    result["projection_25m"] = project(result)
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    result["failed_stages"] = [s for s, v in result["stages"].items() if v["exit_code"] != 0]
    return result


def pixel_summary(checks: dict[str, Any], slices: int) -> dict[str, Any]:
    """The export PHI checks' OCR over the five formats: reads done (cache hits excluded), seconds, per read,
    and what was read of the shard (at risk, sample of the rest, the stated bound)."""
    if not checks:
        return {}
    ocr_s = sum(float(c.get("pixel_ocr_seconds") or 0) for c in checks.values())
    reads = sum(int(c.get("pixel_images_read") or 0) - int(c.get("pixel_cached") or 0) for c in checks.values())
    first = max(checks.values(), key=lambda c: int(c.get("pixel_images_read") or 0))
    return {"checks": len(checks), "ocr_reads": reads, "ocr_s": round(ocr_s, 2),
            "s_per_read": round(ocr_s / reads, 3) if reads else None,
            "reads_per_distinct_image_read": round(reads / max(int(first.get("pixel_images_read") or 0), 1), 3),
            "at_risk_read": first.get("pixel_at_risk_read"), "not_at_risk": first.get("pixel_not_at_risk"),
            "not_at_risk_read": first.get("pixel_not_at_risk_read"), "sample_setting": first.get("pixel_sample_setting"),
            "miss_rate_bound_95": first.get("pixel_miss_rate_bound_95"), "slices": slices}


def project(result: dict[str, Any], slices: float = 25e6, images_per_shard: int = 5000) -> dict[str, Any]:
    """Core-hours for 25M slices from each stage's measured step seconds per slice (one-time assets left out:
    the corpus index, the model registry, the lesion model). CPU only: the grounded generator needs no GPU.
    Step wall time of one process is counted as one core (ingest's thread pool makes it optimistic there,
    the shared machine pessimistic everywhere).

    The export PHI check's OCR does not grow with the slices: it reads every image at risk (none of this CT)
    and a fixed sample of the rest per export shard. So the exports stage is projected as its step time
    without OCR per slice, plus one OCR read (measured seconds per read) per image at risk and ``n`` per
    shard, with shards of ``images_per_shard`` slices (the default partition size: many shards, so an
    upper bound on the sample's cost)."""
    hours = {s: round(slices * v["s_per_1000_slices"] / 1000 / 3600, 1) for s, v in result["stages"].items()}
    out: dict[str, Any] = {"slices": int(slices)}
    px = result.get("export_pixel_check") or {}
    if px.get("s_per_read") and "exports" in result["stages"]:
        n = result["ingested_slices"] or 1
        per_slice = max(result["stages"]["exports"]["s_per_1000_slices"] / 1000 - px["ocr_s"] / n, 0.0)
        at_risk_share = (px.get("at_risk_read") or 0) / n
        sample = px.get("sample_setting")
        shards = slices / images_per_shard
        reads = at_risk_share * slices + (slices * (1 - at_risk_share) if sample == "all" else shards * int(sample or 0))
        hours["exports"] = round((slices * per_slice + reads * px["s_per_read"]) / 3600, 1)
        out["exports_model"] = {"s_per_slice_without_ocr": round(per_slice, 5), "ocr_reads": int(reads),
                                "s_per_read": px["s_per_read"], "shards": int(shards), "sample_per_shard": sample,
                                "at_risk_share": round(at_risk_share, 4)}
    out.update({"cpu_core_hours": round(sum(hours.values()), 1), "cpu_core_hours_by_stage": hours,
                "note": "from bench_e2e's 512x512 CT step times on this machine"})
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    print(json.dumps(main(quick=ap.parse_args().quick), indent=2))
