"""Quality gate figures: the contradiction rate of real pipeline triplets and of a deliberately corrupted
copy, the share of corrupted descriptions caught, and scorer throughput.

Triplets come from ``<data_root>/tables/triplets`` when a pipeline run left them (``--config``), else from
the phantom source run through the real ingest, ROI and grounded-generation code (two volumes).
Throughput is measured against a bare loop that applies one side regex per description (the floor of
any text check), as a ratio measured in the same run.

Run: ``python -m benchmarks.bench_quality [--quick] [--config data/sources.yaml]``.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def _from_tables(config_path: Path):
    from medtrinity_assets.config import load_config
    from medtrinity_assets.export.shard_inputs import read_rows, table_files
    from medtrinity_assets.storage import DataLayout

    layout = DataLayout(load_config(config_path).data_root)
    rows, rois = [], defaultdict(list)
    for path in table_files(layout, "triplets"):
        rows += read_rows(path)
    for path in table_files(layout, "rois"):
        for r in read_rows(path):
            if (r.get("status") or "ok") == "ok":
                rois[str(r["sample_id"])].append(r)
    return rows, rois


def _from_phantom(volumes: int):
    from medtrinity_assets.config import load_config
    from medtrinity_assets.demo.build import _phantom_ct
    from medtrinity_assets.demo.phantom import LABEL_NAMES
    from medtrinity_assets.generation.backends.grounded import GroundedBackend
    from medtrinity_assets.generation.inputs import assemble
    from medtrinity_assets.generation.prompt import load_template
    from medtrinity_assets.generation.run import generate_rows
    from medtrinity_assets.ingest import build_images
    from medtrinity_assets.roi.build import RoiSettings, describe_partition
    from medtrinity_assets.storage import DataLayout

    tmp = Path(tempfile.mkdtemp(prefix="bench_quality_"))
    folder = tmp / "phantom_ct"
    _phantom_ct(folder, volumes)
    names = "\n".join(f"      {k}: {v}" for k, v in LABEL_NAMES.items())
    cfg_path = tmp / "sources.yaml"
    cfg_path.write_text(
        f"data_root: {tmp / 'out'}\nshards: 1\nsalt: bench\ncontext_slices: 2\nsources:\n"
        f"  - name: phantom_ct\n    format: nifti\n    path: {folder / 'images'}\n    labels: {folder / 'labels'}\n"
        f"    labels_csv: {folder / 'labels.csv'}\n    modality: CT\n    organ: abdomen\n    licence: CC0-1.0\n"
        f"    label_names:\n{names}\n")
    cfg = load_config(cfg_path)
    layout = DataLayout(cfg.data_root)
    image_rows = build_images(cfg, cfg.source("phantom_ct"), "s00", layout, salt="bench").table.to_pylist()
    roi_rows, _ = describe_partition(image_rows, layout, "ground_truth", [],
                                     RoiSettings.from_config(cfg))
    facts = assemble(image_rows, roi_rows, [], {})
    table, _, _ = generate_rows(list(zip(facts, image_rows)), GroundedBackend(seed=0), load_template(),
                                lambda p: b"", "s00")
    rois = defaultdict(list)
    for r in roi_rows:
        rois[str(r["sample_id"])].append(r)
    return table.to_pylist(), rois


def main(quick: bool = False, config: Path | None = None) -> dict:
    from medtrinity_assets.quality.consistency import score_rows
    from medtrinity_assets.quality.corrupt import corrupt_rows

    rows, rois = _from_tables(config) if config else ([], {})
    origin = "tables" if rows else "phantom"
    if not rows:
        rows, rois = _from_phantom(1 if quick else 2)
    by_source = defaultdict(list)
    for r in rows:
        by_source[str(r.get("source"))].append(r)
    clean = score_rows(rows, rois)
    corrupted, changed = corrupt_rows(rows, share=1.0)
    dirty = score_rows(corrupted, rois)
    original = {str(r["sample_id"]): r.get("description") for r in rows}
    changed_ids = [str(r["sample_id"]) for r in corrupted if r.get("description") != original[str(r["sample_id"])]]
    caught = sum(1 for sid in changed_ids if sid in dirty.per_triplet)

    reps = 3 if quick else 10
    t0 = time.perf_counter()
    for _ in range(reps):
        score_rows(rows, rois)
    t_score = time.perf_counter() - t0
    side = re.compile(r"\b(left|right)\b")
    t0 = time.perf_counter()
    for _ in range(reps):
        for r in rows:
            side.findall((r.get("description") or "").lower())
    t_bare = time.perf_counter() - t0
    n = reps * max(clean.scored, 1)
    return {
        "origin": origin,
        "triplets": len(rows),
        "scored": clean.scored,
        "contradiction_rate": round(clean.contradiction_rate, 4),
        "contradiction_rate_by_source": {s: round(score_rows(v, rois).contradiction_rate, 4) for s, v in by_source.items()},
        "issues_clean": {k: v for k, v in clean.by_kind.items() if v},
        "corrupted_descriptions": len(changed_ids),
        "corrupted_by_kind": changed,
        "contradiction_rate_corrupted_copy": round(dirty.contradiction_rate, 4),
        "corrupted_caught": caught,
        "catch_rate": round(caught / len(changed_ids), 4) if changed_ids else None,
        "scored_per_second": round(n / t_score, 1) if t_score else None,
        "bare_regex_per_second": round(n / t_bare, 1) if t_bare else None,
        "scorer_vs_bare_regex_ratio": round(t_bare / t_score, 4) if t_score else None,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--config", type=Path, default=None, help="measure the triplets a pipeline run left under data_root")
    args = ap.parse_args()
    print(json.dumps(main(args.quick, args.config), indent=2))
