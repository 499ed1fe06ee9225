"""Run every ratio benchmark (``benchmarks/bench_*.py``) and write ``benchmarks/RESULTS.md``.

    python -m benchmarks --quick            # every benchmark in quick mode (what `make bench` runs)
    python -m benchmarks --only ops ingest  # a subset
    python -m benchmarks --json out.json    # also keep the raw figures

Each benchmark runs in its own Python process (a crash, a hang or a heavy import in one cannot spoil
the others) and prints its ``main(quick)`` dict as JSON; a benchmark that fails is reported as failed
in the table with the tail of its error, and the others still run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MARK = "@@BENCH-RESULT@@"

# The figures the issues ask for, found by key in the flattened results (first key present wins).
HEADLINES: list[tuple[str, str, list[str], str]] = [
    ("Ingest: pipeline vs bare loop (slices/s ratio)", "ingest", ["ratio"], "target >= 0.8"),
    ("Ingest: single-thread pipeline vs bare loop (per-core cost of labels, values, hashes)", "ingest", ["single_thread_ratio"], ""),
    ("Ingest: pipeline slices/s (thread pool per partition)", "ingest", ["pipeline_slices_per_s"], ""),
    ("DICOM reader vs bare pydicom loop (128² CT series, header-heavy)", "dicom", ["ratio_reader_over_bare"],
     "target >= 0.8"),
    ("DICOM reader vs bare pydicom loop (512² CT series)", "dicom", ["ct_512.ratio_reader_over_bare"], "target >= 0.8"),
    ("rois vs images per 512² CT slice, per core (same partition, same process)", "e2e", ["per_core.rois_vs_images"],
     "target <= 1"),
    ("rois vs images per 512² CT slice, Dagster step seconds (same run)", "e2e", ["rois_vs_images"],
     "images uses a thread pool; fixed costs weigh in quick mode"),
    ("images step seconds per 1,000 512² slices", "e2e", ["images_s_per_1000_slices"], ""),
    ("rois step seconds per 1,000 512² slices", "e2e", ["rois_s_per_1000_slices"], ""),
    ("Peak memory of rois at the larger partition / the smaller", "e2e", ["memory.rois_peak_ratio"], "flat: ~1"),
    ("exports step seconds per 1,000 512² slices", "e2e", ["stages.exports.s_per_1000_slices"],
     "the PHI check's OCR reads a fixed sample per shard: per-slice cost falls as shards grow"),
    ("Export PHI check: OCR reads per distinct image over the five formats", "e2e",
     ["export_pixel_check.reads_per_distinct_image_read"], "target 1 (cache by content)"),
    ("Export PHI check: 95 % bound on the share of unread images with readable PHI", "e2e",
     ["export_pixel_check.miss_rate_bound_95"], "0 = every image read; ~3/n for a sample of n"),
    ("Projection, 25M 512² slices from bench_e2e: CPU core-hours", "e2e", ["projection_25m.cpu_core_hours"], ""),
    ("ROIs described per CPU-second", "rois", ["pipeline_rois_per_cpu_s", "pipeline_rois_per_s"], ""),
    ("ROI pipeline vs bare components (per CPU-s)", "rois", ["ratio_pipeline_vs_bare"], ""),
    ("Embedding: pipeline vs bare encoder", "knowledge", ["embedding.embedding_ratio"], ""),
    ("Embedding: passages/s", "knowledge", ["embedding.pipeline_passages_per_s"], ""),
    ("Retrieval QPS (HNSW, batched)", "knowledge", ["search.hnsw.qps_batched", "search.end_to_end_qps_batched"], ""),
    ("Retrieval recall@10 (HNSW vs exact)", "knowledge", ["search.hnsw.recall_at_10"], "target >= 0.95"),
    ("Core corpus recall@5 (labelled queries)", "knowledge", ["core_recall.recall_at_5"], "target >= 0.9"),
    ("Grounded triplets per CPU-second", "generation", ["grounded.partition_path_triplets_per_cpu_s"], ""),
    ("`openai` backend utilisation (fraction of C/L, C=32, L=1 s)", "generation",
     ["openai_c32_l1s.backend_fraction_of_ceiling"], "target >= 0.9"),
    ("`openai` backend utilisation under stress (C=16, L=50 ms; bare httpx loop alongside)", "generation",
     ["openai_c16_l50ms.backend_fraction_of_ceiling"], "CPU-bound on 2 cores"),
    ("Quality: contradiction rate (clean)", "quality", ["contradiction_rate"], ""),
    ("Descriptions (phantom): pipeline phrases", "descriptions", ["phantom.pipeline_phrase_count"], "target 0"),
    ("Descriptions (phantom): most frequent sentence share", "descriptions", ["phantom.most_frequent_sentence_share"], "target <= 0.02"),
    ("Descriptions (phantom): fact coverage", "descriptions", ["phantom.fact_coverage"], ""),
    ("Descriptions (phantom): distinct-2", "descriptions", ["phantom.distinct_2"], ""),
    ("Descriptions (phantom): knowledge use (interpretive clause per finding triplet)", "descriptions", ["phantom.knowledge_use"], "target >= 0.8"),
    ("Descriptions (phantom): median size error vs truth", "descriptions", ["phantom.size_error_median"], "target <= 0.10"),
    ("Descriptions (phantom): contradiction rate", "descriptions", ["phantom.contradiction_rate"], "target 0"),
    ("Descriptions: passage precision@3 (labelled queries)", "descriptions", ["retrieval.precision_at_3"], "target >= 0.8"),
    ("Descriptions (demo run): pipeline phrases in descriptions + attributes", "descriptions", ["demo.pipeline_phrase_count"], "target 0; needs `make demo`"),
    ("Descriptions (demo run): most frequent sentence share", "descriptions", ["demo.most_frequent_sentence_share"], "target <= 0.02"),
    ("Descriptions (demo run): knowledge use", "descriptions", ["demo.knowledge_use"], "target >= 0.8"),
    ("Pixel PHI: recall of PHI images after redaction (RapidOCR; cross-read by Tesseract)", "deid",
     ["rapidocr.recall_after_redaction"], "target >= 0.98"),
    ("Pixel PHI: clean images unchanged", "deid", ["rapidocr.clean_unchanged"], "target >= 0.95"),
    ("Pixel PHI: seconds per image (all OCR passes)", "deid", ["rapidocr.seconds_per_image"], ""),
    ("Dagster overhead per partition (empty-asset run, ms)", "ops", ["dagster.empty_run_ms_per_partition"], ""),
    ("Dagster share of a partition run doing work", "ops", ["dagster.overhead_fraction_of_work_run"], ""),
    ("Dagster fixed cost of a source x shard partition run (ms)", "ops", ["dagster.fixed_cost_per_partition_run_ms"], ""),
    ("Dagster share of a run at the default partition size (5,000 images)", "ops",
     ["dagster.overhead_fraction_at_default_partition_size"], "images stage: an upper bound"),
    ("Batched source manifests: one run / one run per source (time)", "ops",
     ["dagster.batched_manifests.batched_over_per_source"], "single-run backfill policy"),
    ("Checks with their materialisation / as separate steps (run cost)", "ops", ["dagster.checks.fixed_cost_ratio"],
     "4 steps instead of 17"),
    ("Incremental rerun ratio after a model bump (recomputed / affected)", "ops", ["incremental.rerun_ratio"], "target 1.0"),
    ("End-to-end run time (s)", "ops", ["end_to_end.seconds"], ""),
    ("Projection, 25M images: CPU core-hours", "ops", ["projection_25m.cpu_core_hours"], ""),
    ("Projection, 25M images: GPU-hours (stated assumption)", "ops", ["projection_25m.gpu_hours"], ""),
]


def discover(only: list[str] | None = None) -> list[str]:
    names = sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    return [n for n in names if not only or n in only]


def run_one(name: str, quick: bool, timeout: float) -> dict[str, Any]:
    """Run benchmarks.bench_<name>.main(quick) in a child process; returns figures or the error."""
    code = (
        "import json, sys\n"
        f"from benchmarks import bench_{name} as m\n"
        f"r = m.main(quick={quick!r})\n"
        f"sys.stdout.write('\\n{MARK}' + json.dumps(r, default=str) + '\\n')\n"
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg",
               DAGSTER_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "seconds": round(time.perf_counter() - t0, 1), "error": f"timed out after {timeout:.0f}s"}
    seconds = round(time.perf_counter() - t0, 1)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return {"ok": True, "seconds": seconds, "figures": json.loads(line[len(MARK):])}
    tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-12:]
    return {"ok": False, "seconds": seconds, "error": "\n".join(tail) or f"exit code {proc.returncode}"}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, (list, tuple)):
        text = json.dumps(v, default=str)
        return text if len(text) <= 80 else text[:77] + "..."
    return str(v).replace("|", "\\|").replace("\n", " ")


def render(results: dict[str, dict[str, Any]], quick: bool, started: dt.datetime) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC with `python -m benchmarks{' --quick' if quick else ''}` on "
        f"{platform.machine()} / {os.cpu_count()} CPU cores (1-min load average {os.getloadavg()[0]:.1f} at the end: "
        "the machine is shared, so absolute rates are pessimistic; ratios are measured in one process) / "
        f"Python {platform.python_version()}; no GPU. "
        "Each row is one run; ratios compare the pipeline with a bare loop over the same inputs, measured in "
        "the same process. Written by `benchmarks/__main__.py` (do not edit by hand).",
        "",
        "## Headline figures",
        "",
        "| Figure | Value | Note | Benchmark |",
        "|---|---|---|---|",
    ]
    for label, bench, keys, note in HEADLINES:
        res = results.get(bench)
        flat = flatten(res.get("figures", {})) if res and res.get("ok") else {}
        key = next((k for k in keys if k in flat), None)
        value = _fmt(flat[key]) if key else ("failed" if res and not res.get("ok") else "not measured")
        lines.append(f"| {label} | {value} | {note} | `bench_{bench}`{f' `{key}`' if key else ''} |")
    lines += ["", "## Every figure", ""]
    for name, res in results.items():
        lines.append(f"### bench_{name} ({res['seconds']} s)")
        lines.append("")
        if not res.get("ok"):
            lines += ["FAILED:", "", "```", res.get("error", ""), "```", ""]
            continue
        lines += ["| Key | Value |", "|---|---|"]
        lines += [f"| `{k}` | {_fmt(v)} |" for k, v in flatten(res["figures"]).items()]
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="quick mode of every benchmark (minutes, not hours)")
    ap.add_argument("--only", nargs="*", help="benchmark names (bench_<name>.py) to run")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    args = ap.parse_args(argv)

    started = dt.datetime.now(dt.UTC)
    results: dict[str, dict[str, Any]] = {}
    for name in discover(args.only):
        print(f"bench_{name} ...", end=" ", flush=True)
        results[name] = run_one(name, args.quick, args.timeout)
        print(f"{'ok' if results[name]['ok'] else 'FAILED'} in {results[name]['seconds']} s", flush=True)
    if results.get("ops", {}).get("ok"):
        # the 25M-image projection needs every benchmark's per-core figures, so it is made here
        from benchmarks.bench_ops import project_25m

        results["ops"]["figures"]["projection_25m"] = project_25m(results)
    args.out.write_text(render(results, args.quick, started))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {args.out}")
    failed = [n for n, r in results.items() if not r["ok"]]
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
