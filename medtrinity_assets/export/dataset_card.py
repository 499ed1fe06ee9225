"""Assemble the dataset card from the merged exports and the quality tables, and write it where it is read.

Reads what is already decided: the dataset folders under ``exports/`` (statistics, splits, VQA figures,
checksums), the category map, the ``near_duplicates`` asset's tables for the dataset-wide results
(duplicate groups, evaluation-set leaks) and the ``image_facts`` table for organ coverage — never
recomputing them. Writes the same Markdown with its
plots to ``card/`` and to ``exports/hf/`` (the Hub card), then re-seals ``exports/hf/SHA256SUMS``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtrinity_assets.export import card_render, hf_parquet, vqa
from medtrinity_assets.export.build import FORMATS, dataset_dir
from medtrinity_assets.export.categories import load as load_categories
from medtrinity_assets.export.merge import categories_path
from medtrinity_assets.export.sha256sums import SUMS_NAME, verify_sha256sums, write_sha256sums
from medtrinity_assets.export.shard_inputs import read_rows
from medtrinity_assets.quality import near_duplicates
from medtrinity_assets.quality.export_readers import check_export_splits, split_membership
from medtrinity_assets.quality.phi import scan_tree
from medtrinity_assets.quality.splits import SPLITS
from medtrinity_assets.storage import DataLayout, atomic_write_text


@dataclass
class CardResult:
    markdown: str
    card_path: Path
    hub_card_path: Path
    plots: dict[str, Path]
    stats: card_render.CardStats
    quality_numbers: dict[str, Any] = field(default_factory=dict)
    contradiction_by_source: dict[str, float] = field(default_factory=dict)
    organ_coverage: dict[str, dict[str, float]] = field(default_factory=dict)


def organ_coverage(layout: DataLayout, exported: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per modality of the exported images: how many have at least one organ and a body region, as the
    ``rois`` stage's ``image_facts`` rows say (an exported image without a facts row counts as neither)."""
    from medtrinity_assets.roi.image_facts import coverage_by_modality

    ids = {str(r["id"]) for r in exported}
    facts: dict[str, dict[str, Any]] = {}
    base = layout.root / "tables" / "image_facts"
    for path in sorted(base.rglob("*.parquet")) if base.exists() else []:
        for r in read_rows(path, ("sample_id", "organs", "body_region")):
            if str(r["sample_id"]) in ids:
                facts[str(r["sample_id"])] = r
    return coverage_by_modality({"modality": r.get("modality"), **{k: (facts.get(str(r["id"])) or {}).get(k)
                                                                    for k in ("organs", "body_region")}}
                                for r in exported)


def vqa_pairs(layout: DataLayout) -> list[dict[str, Any]]:
    folder = dataset_dir(layout, "vqa")
    return [json.loads(line) for split in SPLITS if (folder / f"{split}.jsonl").is_file()
            for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines() if line]


def export_folders(layout: DataLayout) -> dict[str, dict[str, Any]]:
    """Per format folder: whether its SHA256SUMS verifies, files, bytes (hard links counted once) and
    samples per split (from the folder itself)."""
    from medtrinity_assets.quality.export_readers import read_back_dataset

    info: dict[str, dict[str, Any]] = {}
    for fmt in FORMATS:
        folder = dataset_dir(layout, fmt)
        if not folder.is_dir():
            continue
        sums = verify_sha256sums(folder)
        files = [p for p in folder.rglob("*") if p.is_file() and p.name != SUMS_NAME]
        images = [p for p in files if p.suffix == ".png" and p.parent.parent.name == "images"]
        linked = sum(1 for p in images if p.stat().st_nlink > 1)
        per, problems = read_back_dataset(fmt, folder)
        info[fmt] = {"folder": str(folder.relative_to(layout.root)), "sealed": sums.ok,
                     "sums_problem": sums.error or (", ".join(sums.mismatched + sums.missing + sums.unlisted)[:200]),
                     "files": len(files), "samples": per, "reader_problems": problems[:20],
                     "images": (f"{len(images)} hard links to the blobs" if images and linked == len(images)
                                else f"{len(images)} files ({linked} linked)" if images else "embedded")}
    return info


def limitations(cfg, stats: card_render.CardStats) -> list[str]:
    expert = sorted(s.name for s in cfg.sources if s.roi == "expert")
    none = sorted(s.name for s in cfg.sources if s.roi == "none")
    out = [
        "Regions from expert models are a model's output, not an annotation: their `origin` names the model and "
        "version and `confidence` its mean probability" + (f" (sources: {', '.join(expert)})." if expert else "."),
        "Absence is only stated (a 'no' answer, a count) for images whose ground-truth annotation would have shown "
        "the finding; elsewhere nothing is said about what is not marked.",
        "Shape facts (round, oval, lobulated, irregular) are measured in pixels; on anisotropic pixels they are "
        "approximate.",
        f"{stats.rois_with_mm} of {sum(stats.roi_origins.values())} regions have millimetre sizes; the others come "
        "from images without a known pixel spacing (photographs, some 2D sources).",
        "Descriptions are written from the structured facts and retrieved knowledge; they are checked against the "
        "facts (see the contradiction rates) but not read by a radiologist.",
        "Slices of one volume are correlated; splits are by subject, but a model evaluated per slice sees many "
        "similar images of one patient.",
    ]
    if none:
        out.append(f"Sources without regions of interest ({', '.join(none)}) contribute image-level descriptions only.")
    return out


def build_dataset_card(cfg, layout: DataLayout, identifiers: list[str] | None = None,
                       contradiction_by_source: Mapping[str, float] | None = None) -> CardResult:
    """The card from the exports as merged. ``contradiction_by_source``: the rates the ``triplets_consistency``
    check recorded per source (the Dagster layer reads them; the card never rescores the text)."""
    from medtrinity_assets.quality.phi import collect_identifiers

    hf_dir = dataset_dir(layout, "hf")
    exports = export_folders(layout)  # verified before the card touches the hf folder
    hf_rows = card_render.read_hf_rows((hf_dir / "data").glob("*.parquet"))
    stats = card_render.collect_stats(hf_rows)
    coverage = organ_coverage(layout, hf_rows)
    excl = near_duplicates.read(layout)
    dedup = excl.dedup.summary()
    splits = check_export_splits(split_membership(layout.exports))
    from medtrinity_assets.deid.report import dataset_summary, redaction_sheet, sentence
    from medtrinity_assets.quality.phi import public_words

    ids = identifiers if identifiers is not None else collect_identifiers(cfg)
    phi = scan_tree(layout.exports, ids, public_words=public_words(cfg))
    deid = dataset_summary(layout)  # what ingest blacked out and redacted (counts by kind, never text)
    sheet = redaction_sheet(layout, layout.card / card_render.PLOTS_FOLDER / "redactions.png")
    rates = dict(contradiction_by_source or {})
    vqa_summary = vqa.summarise(vqa_pairs(layout))
    cats = load_categories(categories_path(layout))
    numbers: dict[str, Any] = {
        "samples": stats.samples,
        "duplicate_groups": dedup["duplicate_groups"],
        "duplicate_images_folded": dedup["duplicate_images"],
        "cross_source_groups": dedup["cross_source_groups"],
        "leaked_images_excluded": len(excl.leaks),
        "subjects_spanning_splits": splits.subjects_spanning_splits,
        "records_in_wrong_split_file": len(splits.records_in_wrong_file),
        "records_disagreeing_across_formats": len(splits.records_disagreeing_across_formats),
        "phi_files_scanned": phi.files_scanned,
        "phi_hits": phi.hits,
        "deid_images_ocr_read": deid["images_ocr_read"],
        "deid_images_redacted": deid["images_redacted"],
        "deid_boxes_by_kind": deid["boxes_by_kind"],
        "deid_text_redactions_by_kind": deid["text_redactions_by_kind"],
        "deid_items_quarantined": deid["items_quarantined"],
        "export_folders_sealed": sum(1 for i in exports.values() if i["sealed"]),
        "export_folders_failing_sha256sums": sum(1 for i in exports.values() if not i["sealed"]),
        "export_reader_problems": sum(len(i["reader_problems"]) for i in exports.values()),
        "categories": len(cats.categories),
        "vqa_pairs": vqa_summary["pairs"],
        "vqa_distinct_questions": vqa_summary["distinct_questions"],
        "vqa_distinct_answers": vqa_summary["distinct_answers"],
        "max_contradiction_rate_allowed": float(cfg.quality.max_contradiction_rate),
        "organ_coverage_by_modality": coverage,
    }
    quality_rows = {
        "contradiction gate": f"max {numbers['max_contradiction_rate_allowed']:.1%} per triplet shard",
        "near-duplicates": f"{dedup['duplicate_groups']} groups ({dedup['cross_source_groups']} across sources), "
                           f"{dedup['duplicate_images']} copies folded into their representative",
        "leakage": f"{len(excl.leaks)} images match evaluation-set hashes and are excluded",
        "subject-level split": ("passed" if splits.ok else "FAILED")
                               + f": {splits.subjects_spanning_splits} subjects in two splits, "
                               f"{len(splits.records_in_wrong_file)} records in another split's file, "
                               f"{len(splits.records_disagreeing_across_formats)} samples split differently by two "
                               f"formats, over {sum(splits.records.values())} records of {len(splits.records)} formats",
        "PHI scan": f"{phi.hits} identifier hits in {phi.files_scanned} export files ({phi.identifiers} input "
                    "identifiers searched; every exported image OCR'd by the export checks)",
        "de-identification": sentence(deid) + (f" ![redacted images, boxes outlined]({card_render.PLOTS_FOLDER}/"
                                                f"{sheet.name})" if sheet else ""),
        "readers": "every split of every format re-read with its reader: "
                   + (f"{numbers['export_reader_problems']} problems" if numbers["export_reader_problems"] else "no problem"),
        "SHA256SUMS": f"{numbers['export_folders_sealed']} export folders sealed, "
                      f"{numbers['export_folders_failing_sha256sums']} failing",
    }
    src_rows = [{"name": s.name, "format": s.format, "licence": s.licence, "roi": s.roi,
                 "citation": s.citation or ""} for s in cfg.sources]
    inputs = card_render.CardInputs(
        stats=stats, sources=src_rows, categories=cats.categories, hf_splits=hf_parquet.split_sizes(hf_dir),
        features=hf_parquet.yaml_features(), column_docs=hf_parquet.COLUMN_DOCS, quality=quality_rows,
        contradiction_by_source=rates, exports=exports, vqa=vqa_summary, limitations=limitations(cfg, stats),
        title=cfg.exports.title, organ_coverage=coverage,
    )
    plots = card_render.write_plots(stats, rates, vqa_summary.get("question_types", {}),
                                    layout.card / card_render.PLOTS_FOLDER)
    if sheet is not None:
        plots["redactions"] = sheet  # travels with the Hub card like the other plots
    inputs.plots = {k: f"{card_render.PLOTS_FOLDER}/{p.name}" for k, p in plots.items()}
    markdown = card_render.render_card(inputs)
    atomic_write_text(layout.card / "README.md", markdown)
    hub_card = hf_dir / "README.md"
    if hf_dir.is_dir() and exports.get("hf", {}).get("sealed"):
        shutil.rmtree(hf_dir / card_render.PLOTS_FOLDER, ignore_errors=True)  # an earlier card's plots
        (hf_dir / card_render.PLOTS_FOLDER).mkdir()
        for p in plots.values():
            shutil.copyfile(p, hf_dir / card_render.PLOTS_FOLDER / p.name)
        if card_render.dataset_licence(src_rows) == "other":
            atomic_write_text(hf_dir / "LICENSE.md", licence_file(src_rows))
        else:
            (hf_dir / "LICENSE.md").unlink(missing_ok=True)
        atomic_write_text(hub_card, markdown)
        write_sha256sums(hf_dir)  # the card and its plots are part of what a user downloads
    return CardResult(markdown=markdown, card_path=layout.card / "README.md", hub_card_path=hub_card, plots=plots,
                      stats=stats, quality_numbers=numbers, contradiction_by_source=rates, organ_coverage=coverage)


def licence_file(sources: list[dict[str, Any]]) -> str:
    """LICENSE.md for a dataset whose sources have different licences: each image's `licence` column applies."""
    lines = ["# Licences", "", "This dataset combines sources under different licences. Each image is distributed under "
             "the licence of its source, given in its `licence` column:", "", "| source | licence |", "|---|---|"]
    lines += [f"| {s['name']} | {s.get('licence', '')} |" for s in sources]
    return "\n".join(lines) + "\n"
