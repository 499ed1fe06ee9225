"""ROI stage throughput: ROIs described per second per core, against a bare loop over the same inputs.

Input: phantom CT volumes written as NIfTI, read with the project's reader and sliced by its
preprocessing into an ``images`` partition (lesion slices), exactly what ``rois`` reads.

- pipeline: :func:`describe_partition` in ground-truth mode: label map -> components -> every fact
  (side, position, region, size, intensity, texture, GLCM, shape, margin, relations) -> COCO RLE.
- bare: the same files read (values .npy + label-map PNG), each label's components found, and only
  area, box and centroid computed -- the floor any ROI extraction pays.

Both run in one process, interleaved over rounds; CPU time is measured with ``time.process_time``
so "per core" means per CPU-second of this process. Run: ``python -m benchmarks.bench_rois [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _inputs(tmp: Path, n_volumes: int):
    from medtrinity_assets.demo.phantom import make_phantom
    from medtrinity_assets.storage import DataLayout
    from medtrinity_assets_tests.support.roi import image_rows, read_phantom

    layout = DataLayout(tmp / "out")
    rows = []
    for i in range(n_volumes):
        ph = make_phantom(11, i)
        wanted = sorted({z for les in ph.lesions for z in les["slices"]})
        rows += image_rows(read_phantom(ph, tmp, "LPS"), layout, source="bench", shard="s00",
                           sample_prefix=f"b{i}", slices=wanted)
    return layout, rows


def _bare(rows, layout) -> int:
    from scipy import ndimage

    from medtrinity_assets.roi.build import _png_array

    n = 0
    for r in rows:
        values = np.load(layout.resolve(r["values_path"]))
        lab = _png_array(layout.resolve(r["gt_mask_path"]))
        for v in np.unique(lab):
            if v == 0:
                continue
            comp, k = ndimage.label(lab == v, structure=np.ones((3, 3)))
            for i in range(1, k + 1):
                m = comp == i
                if m.sum() < 9:
                    continue
                ys, xs = np.nonzero(m)
                _ = (m.sum(), xs.min(), xs.max(), ys.min(), ys.max(), xs.mean(), ys.mean(), float(values[m].mean()))
                n += 1
    return n


def main(quick: bool = False) -> dict:
    from medtrinity_assets.roi.build import RoiSettings, describe_partition

    n_volumes, rounds = (2, 2) if quick else (6, 3)
    with tempfile.TemporaryDirectory() as d:
        layout, rows = _inputs(Path(d), n_volumes)
        settings = RoiSettings()
        describe_partition(rows[:3], layout, "ground_truth", [], settings)  # warm-up: imports, caches
        _bare(rows[:3], layout)
        t_pipe = c_pipe = t_bare = c_bare = 0.0
        n_pipe = n_bare = 0
        for _ in range(rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            out, _stats = describe_partition(rows, layout, "ground_truth", [], settings)
            t_pipe += time.perf_counter() - t0
            c_pipe += time.process_time() - c0
            n_pipe += sum(1 for r in out if r["status"] == "ok")
            t0, c0 = time.perf_counter(), time.process_time()
            n_bare += _bare(rows, layout)
            t_bare += time.perf_counter() - t0
            c_bare += time.process_time() - c0
    result = {
        "images": len(rows),
        "rois_per_round": n_pipe // rounds,
        "pipeline_rois_per_s": round(n_pipe / t_pipe, 1),
        "pipeline_rois_per_cpu_s": round(n_pipe / c_pipe, 1),
        "bare_rois_per_s": round(n_bare / t_bare, 1),
        "bare_rois_per_cpu_s": round(n_bare / c_bare, 1),
        "ratio_pipeline_vs_bare": round((n_pipe / c_pipe) / (n_bare / c_bare), 3),
        "note": "pipeline = every fact + RLE; bare = components + area/box/centroid only; per core = per CPU-second",
    }
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    print(json.dumps(main(quick=ap.parse_args().quick), indent=2))
