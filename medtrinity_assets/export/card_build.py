"""Assemble the dataset card from the exports and the tables, and seal every export folder.

Runs after every export shard: verifies each shard's SHA256SUMS, writes a top-level SHA256SUMS per
format folder, measures the contradiction rate per source, repeats the global dedup/leakage/split
checks, scans the exports for identifiers, then writes ``card/README.md`` and its plots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtrinity_assets.export.build import FORMATS, export_dir
from medtrinity_assets.export.card import CardStats, collect_stats, read_hf_rows, render_card, write_card, write_plots
from medtrinity_assets.export.sha256sums import SUMS_NAME, verify_sha256sums, write_sha256sums
from medtrinity_assets.export.shard_inputs import exclusions, image_index, read_rows
from medtrinity_assets.quality.consistency import score_rows
from medtrinity_assets.quality.leakage import load_eval_hashes
from medtrinity_assets.quality.phi import scan_tree
from medtrinity_assets.quality.splits import check_splits
from medtrinity_assets.storage import DataLayout


@dataclass
class CardResult:
    markdown: str
    card_path: Path
    plots: dict[str, Path]
    stats: CardStats
    quality_numbers: dict[str, Any] = field(default_factory=dict)
    contradiction_by_source: dict[str, float] = field(default_factory=dict)


def contradiction_by_source(layout: DataLayout, sources: list[str]) -> dict[str, float]:
    out = {}
    base = layout.root / "tables" / "triplets"
    for source in sources:
        rows, rois = [], {}
        for path in sorted(base.rglob(f"source={source}.parquet")) if base.exists() else []:
            rows += read_rows(path)
            rpath = Path(str(path).replace("/tables/triplets/", "/tables/rois/"))
            for r in read_rows(rpath):
                if (r.get("status") or "ok") == "ok":
                    rois.setdefault(str(r["sample_id"]), []).append(r)
        if rows:
            out[source] = round(score_rows(rows, rois).contradiction_rate, 4)
    return out


def seal_exports(layout: DataLayout) -> dict[str, dict[str, Any]]:
    """Verify every shard folder, then write a top-level SHA256SUMS per format (covering the shards)."""
    info: dict[str, dict[str, Any]] = {}
    for fmt in FORMATS:
        base = export_dir(layout, fmt)
        if not base.is_dir():
            continue
        shards = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        bad = [s.name for s in shards if not verify_sha256sums(s).ok]
        sums = write_sha256sums(base, include_nested_sums=False) if not bad else None
        files = sum(1 for _ in base.rglob("*") if _.is_file() and _.name != SUMS_NAME)
        info[fmt] = {"folder": str(base.relative_to(layout.root)), "shards": len(shards), "files": files,
                     "bad_shards": bad, "sealed": sums is not None}
    return info


def build_dataset_card(cfg, layout: DataLayout, identifiers: list[str] | None = None) -> CardResult:
    from medtrinity_assets.quality.phi import collect_identifiers

    sources = [s.name for s in cfg.sources]
    quality_cfg = cfg.section("quality")
    exports = seal_exports(layout)
    hf_rows = read_hf_rows(export_dir(layout, "hf").glob("*/*.parquet")) if export_dir(layout, "hf").is_dir() else []
    stats = collect_stats(hf_rows)
    for fmt, info in exports.items():
        if fmt == "hf":
            info["samples"] = stats.samples
    index = image_index(layout, sources)
    excl = exclusions(index, load_eval_hashes(cfg.eval_hashes), quality_cfg, root=layout.root)
    splits = check_splits(index)
    ids = identifiers if identifiers is not None else collect_identifiers(cfg)
    phi = scan_tree(layout.exports, ids)
    rates = contradiction_by_source(layout, sources)
    numbers: dict[str, Any] = {
        "images_indexed": len(index),
        **{f"dedup_{k}": v for k, v in excl.dedup.summary().items()},
        "leaked_images_excluded": len(excl.leaks),
        "split_spanning_subjects": splits.spanning_subjects,
        "split_misassigned_images": splits.misassigned_images,
        "phi_files_scanned": phi.files_scanned,
        "phi_hits": phi.hits,
        "phi_identifiers_searched": phi.identifiers,
        "export_folders_sealed": sum(1 for i in exports.values() if i["sealed"]),
        "export_shards_failing_sha256sums": sum(len(i["bad_shards"]) for i in exports.values()),
        "max_contradiction_rate_allowed": float(quality_cfg.get("max_contradiction_rate", 0.05)),
    }
    quality_rows = {
        "contradiction gate": f"max {numbers['max_contradiction_rate_allowed']:.1%} per triplet shard",
        "near-duplicates": f"{excl.dedup.summary()['duplicate_groups']} groups "
                           f"({excl.dedup.summary()['cross_source_groups']} across sources), "
                           f"{excl.dedup.n_duplicates} copies folded into their representative",
        "leakage": f"{len(excl.leaks)} images match evaluation-set hashes and are excluded",
        "patient-level split": ("passed" if splits.ok else "FAILED")
                               + f": {splits.spanning_subjects} subjects span splits, subjects per split "
                               + ", ".join(f"{k} {v}" for k, v in splits.subjects.items()),
        "PHI scan": f"{phi.hits} identifier hits in {phi.files_scanned} export files "
                    f"({phi.identifiers} input identifiers searched)",
        "SHA256SUMS": f"{numbers['export_folders_sealed']} export folders sealed, "
                      f"{numbers['export_shards_failing_sha256sums']} shard folders failing",
    }
    src_rows = [{"name": s.name, "format": s.format, "licence": s.licence, "roi": s.roi} for s in cfg.sources]
    plots = write_plots(stats, rates, layout.card)
    markdown = render_card(stats, src_rows, quality_rows, rates, exports, {k: p.name for k, p in plots.items()})
    path = write_card(layout.card, markdown)
    return CardResult(markdown=markdown, card_path=path, plots=plots, stats=stats, quality_numbers=numbers,
                      contradiction_by_source=rates)
