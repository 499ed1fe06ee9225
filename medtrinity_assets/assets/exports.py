"""Export stage: ``triplets`` [source x shard] + ``near_duplicates`` -> ``export_<format>`` [shard] ->
``dataset_exports`` -> ``dataset_card``, and their checks.

Each ``export_<format>`` partition writes one shard's *part* of one format (``export_parts/<format>/<shard>/``)
and depends on that shard's triplets of every source (fan-in = number of sources) and on the dataset-wide
``near_duplicates`` (which duplicates and leaks to drop; read, never recomputed). Before writing, a shard is
gated on the triplets' blocking checks (``triplets.EXPORT_GATING_CHECKS``): every triplet partition of the
shard must have passed them on its latest materialisation, as Dagster recorded it. A failed, missing or
outdated evaluation stops the export with the partitions named, so a broken shard never reaches an export
even when its check ran in an earlier run; the contradiction score itself is computed once, by its check.
``dataset_exports`` merges the parts into the per-split files users train on (``exports/llava/train.json``
...; see ``export/merge.py`` for why), and ``dataset_card`` describes them (``exports/hf/README.md`` and
``card/README.md``).
"""


import functools
from pathlib import Path

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    Definitions,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from medtrinity_assets.assets.partition_checks import check_spec
from medtrinity_assets.assets.triplets import EXPORT_GATING_CHECKS
from medtrinity_assets.code_versions import code_version
from medtrinity_assets.partitions import shard_partitions, source_shard_key, source_shard_to_shard
from medtrinity_assets.resources import PipelineResource

STAGE = "exports"

EXPORT_FORMATS = {
    "hf": "Hugging Face Parquet (id, image with embedded bytes, caption, ROIs, attributes, provenance); "
          "load with datasets.load_dataset('parquet', ...).",
    "llava": "LLaVA conversation JSON (caption-style instruction and the description), per split.",
    "webdataset": "WebDataset tar shards per split: <key>.png, <key>.json, <key>.txt.",
    "coco": "COCO instance JSON of the ROIs per split (masks as RLE, origin and model version on every annotation); "
            "category names here, ids from the dataset-wide map when merged.",
    "vqa": "Question-answer candidates from the facts (16 question types incl. relations, counting, size in mm, "
           "multiple choice); yes/no balanced when merged.",
}


def export_asset_key(fmt: str) -> AssetKey:
    return AssetKey(f"export_{fmt}")


def triplet_partitions(layout, sources: list[str], shards: list[str]) -> dict[str, str]:
    """Partition key -> source of every source x shard with a triplets table, in key order."""
    keys = {str(source_shard_key(s, sh)): s for s in sources for sh in shards
            if layout.table_path("triplets", {"source": s, "shard": sh}).exists()}
    return dict(sorted(keys.items()))


def unverified_triplet_partitions(instance, layout, shard: str, sources: list[str]) -> list[str]:
    """'<why> <check> on <partition>' for every triplet partition of the shard (with a triplets table to
    export) whose gating checks did not pass on its latest materialisation, as Dagster recorded them."""
    parts = list(triplet_partitions(layout, sources, [shard]))
    if not parts:
        return []
    keys = list(EXPORT_GATING_CHECKS)
    try:
        infos = instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=parts)
    except Exception as exc:
        raise Failure(description=f"shard {shard}: the instance could not report the triplet checks ({exc}); "
                                  "refusing to export unchecked triplets") from exc
    latest = {(i.check_key, i.partition_key): i for i in infos}
    out = []
    for pk in parts:
        for key in keys:
            info = latest.get((key, pk))
            if info is None:
                out.append(f"never ran {key.name} on {pk}")
            elif info.latest_execution_status.value == "FAILED":
                out.append(f"failed {key.name} on {pk}")
            elif info.latest_execution_status.value != "SUCCEEDED":
                out.append(f"unfinished {key.name} on {pk}")
            elif not info.is_current:
                out.append(f"outdated {key.name} on {pk} (the triplets were rematerialised since)")
    return out


CONSISTENCY_CHECK = AssetCheckKey(AssetKey("triplets"), "triplets_consistency")


def recorded_contradiction_by_source(instance, layout, sources: list[str], shards: list[str]) -> dict[str, float]:
    """Per source: flagged / scored triplets over the latest ``triplets_consistency`` evaluation of each of its
    triplet partitions, as the check recorded them -- the card reports the score the check computed, once."""
    wanted = triplet_partitions(layout, sources, shards)
    latest: dict[str, tuple[int, int]] = {}
    cursor = None
    while len(latest) < len(wanted):
        records = instance.event_log_storage.get_asset_check_execution_history(CONSISTENCY_CHECK, limit=500, cursor=cursor)
        if not records:
            break
        for rec in records:  # newest first: the first evaluation seen of a partition is its latest
            event = rec.event.dagster_event if rec.event else None
            meta = getattr(event.event_specific_data, "metadata", None) if event else None
            if rec.partition in wanted and rec.partition not in latest and meta and "scored" in meta:
                latest[rec.partition] = (int(meta["scored"].value), int(meta["flagged"].value))
        cursor = records[-1].id
    totals: dict[str, list[int]] = {}
    for partition, (scored, flagged) in latest.items():
        t = totals.setdefault(wanted[partition], [0, 0])
        t[0] += scored
        t[1] += flagged
    return {source: round(flagged / scored, 4) if scored else 0.0 for source, (scored, flagged) in sorted(totals.items())}


def _make_export_asset(fmt: str, description: str):
    @asset(
        name=f"export_{fmt}",
        code_version=code_version("exports"),
        partitions_def=shard_partitions,
        deps=[AssetDep("triplets", partition_mapping=source_shard_to_shard), AssetDep("near_duplicates")],
        group_name=STAGE,
        kinds={"python", "parquet" if fmt == "hf" else "json"},
        description=f"One shard's part of the {fmt} export (export_parts/{fmt}/<shard>/): " + description,
        check_specs=[
            check_spec(f"export_{fmt}", f"export_{fmt}_integrity",
                       f"The {fmt} shard part's SHA256SUMS verifies and its files re-read with the format's reader.",
                       blocking=True, partitions_def=shard_partitions),
            check_spec(f"export_{fmt}", f"export_{fmt}_phi",
                       f"No identifier of the inputs in any file of the {fmt} shard, and no identifier (header value, "
                       "name, ID, date, time) readable by OCR in its images; reports kinds and file names only.",
                       blocking=True, partitions_def=shard_partitions),
        ],
    )
    def _export(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
        from medtrinity_assets.export.build import export_part
        from medtrinity_assets.export.sha256sums import verify_sha256sums
        from medtrinity_assets.quality import near_duplicates

        cfg = pipeline.config()
        layout = pipeline.layout()
        shard = context.partition_key
        sources = [s.name for s in cfg.sources]
        blocked = unverified_triplet_partitions(context.instance, layout, shard, sources)
        if blocked:
            raise Failure(
                description=f"shard {shard} is blocked from the {fmt} export: " + "; ".join(blocked)
                + ". Fix or regenerate those triplet partitions (source_shard_job runs their checks), then rerun this export.",
                metadata={"blocked_checks": MetadataValue.json(blocked)},
            )
        try:
            excl = near_duplicates.read(layout)
        except near_duplicates.NotMaterialised as exc:
            raise Failure(description=str(exc)) from exc
        res = export_part(layout, fmt, shard, sources, excl)
        sums = verify_sha256sums(res.folder)
        if not sums.ok:
            raise Failure(description=f"{res.folder}: SHA256SUMS does not verify right after writing "
                                      f"(mismatched {sums.mismatched}, missing {sums.missing}); disk problem?")
        context.log.info(f"{fmt} shard {shard}: {res.selection.exported} samples -> {res.folder}")
        return MaterializeResult(
            metadata={
                "folder": MetadataValue.path(str(res.folder)),
                "samples": res.selection.exported,
                "dagster/row_count": res.selection.exported,
                **{f"selection/{k}": v for k, v in res.selection.as_metadata().items()},
                "files": MetadataValue.json(res.files),
                "sources": MetadataValue.json(res.sources),
                "sha256sums_files": sums.verified,
                "leaked_images_total": len(excl.leaks),
                "duplicate_groups_total": len(excl.dedup.groups),
                "seconds": round(res.seconds, 3),
            },
            check_results=export_part_checks(fmt, pipeline, shard),
        )

    return _export


export_hf = _make_export_asset("hf", EXPORT_FORMATS["hf"])
export_llava = _make_export_asset("llava", EXPORT_FORMATS["llava"])
export_webdataset = _make_export_asset("webdataset", EXPORT_FORMATS["webdataset"])
export_coco = _make_export_asset("coco", EXPORT_FORMATS["coco"])
export_vqa = _make_export_asset("vqa", EXPORT_FORMATS["vqa"])
EXPORT_ASSETS = [export_hf, export_llava, export_webdataset, export_coco, export_vqa]


@asset(
    code_version=code_version("dataset_exports"),
    deps=[AssetDep(a.key) for a in EXPORT_ASSETS],
    check_specs=[check_spec("dataset_exports", "dataset_exports_splits_and_readers",
                            "Every split file of every format re-reads with its reader, every format folder's SHA256SUMS "
                            "verifies, and no subject appears in two splits in any format (nor a record in another "
                            "split's file).", blocking=True, partitions_def=None)],
    group_name=STAGE,
    kinds={"python", "json"},
    description="The dataset as users get it: every format's shard parts merged into per-split files "
                "(exports/llava/train.json, exports/coco/annotations_test.json, exports/hf/data/<split>-*.parquet, "
                "exports/webdataset/<split>-*.tar, exports/vqa/<split>.jsonl), one category map "
                "(exports/categories.json), each image stored once (hard links to the blobs), yes/no VQA answers "
                "balanced per question type and split.",
)
def dataset_exports(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    from medtrinity_assets.export.merge import PartProblem, merge_dataset
    from medtrinity_assets.export.vqa import summarise

    layout = pipeline.layout()
    try:
        merged = merge_dataset(layout, shard_partitions.get_partition_keys())
    except PartProblem as exc:
        raise Failure(description=str(exc)) from exc
    if not merged.formats:
        raise Failure(description="no export part to merge: materialise the export_<format> partitions first")
    meta: dict = {}
    for fmt, m in merged.formats.items():
        context.log.info(f"{fmt}: {m.samples} from shards {m.shards} -> {m.folder}"
                         + (f"; no part yet for {m.missing_shards}" if m.missing_shards else ""))
        meta[f"{fmt}/samples"] = MetadataValue.json(m.samples)
        meta[f"{fmt}/folder"] = MetadataValue.path(str(m.folder))
        if m.missing_shards:
            meta[f"{fmt}/missing_shards"] = MetadataValue.json(m.missing_shards)
        if fmt in ("llava", "coco", "vqa"):
            meta[f"{fmt}/images_linked"] = m.images.linked
            meta[f"{fmt}/images_copied"] = m.images.copied
    vqa_folder = merged.formats.get("vqa")
    if vqa_folder is not None:
        import json

        pairs = [json.loads(line) for f in sorted(vqa_folder.folder.glob("*.jsonl"))
                 for line in f.read_text(encoding="utf-8").splitlines() if line]
        meta["vqa/summary"] = MetadataValue.json(summarise(pairs))
    return MaterializeResult(check_results=[dataset_exports_check(pipeline)], metadata={
        **meta,
        "categories": len(merged.categories.categories),
        "new_categories": MetadataValue.json(merged.new_categories),
        "category_map": MetadataValue.md("\n".join(["| id | label | kind |", "|---:|---|---|"] + [
            f"| {c['id']} | {c['name']} | {c['kind']} |" for c in merged.categories.categories])),
        "dagster/row_count": sum(merged.formats["hf"].samples.values()) if "hf" in merged.formats else 0,
    })


@asset(
    code_version=code_version("dataset_card"),
    deps=[AssetDep("dataset_exports"), AssetDep("near_duplicates")],
    check_specs=[
        check_spec("dataset_card", "dataset_card_phi_scan",
                   "PHI scan over every output file under data_root (tables, blobs, exports, card, catalog); the private "
                   "path table is left out and reported as skipped.", blocking=True, partitions_def=None),
        check_spec("dataset_card", "dataset_card_exports_sealed",
                   "Every export format folder's SHA256SUMS verifies (the hf folder's covers the card).",
                   blocking=True, partitions_def=None),
    ],
    group_name=STAGE,
    kinds={"python", "markdown"},
    description="Dataset card (Hub YAML front matter, Markdown, PNG plots) at exports/hf/README.md and card/README.md: "
                "sources, licences and citations, columns and conventions, splits, categories, ROI origins, VQA "
                "figures, quality results read from near_duplicates and the exports, limitations.",
)
def dataset_card(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    from medtrinity_assets.export.dataset_card import build_dataset_card
    from medtrinity_assets.quality.near_duplicates import NotMaterialised
    from medtrinity_assets.ui_preview import inline_png_markdown

    cfg = pipeline.config()
    layout = pipeline.layout()
    try:
        rates = recorded_contradiction_by_source(context.instance, layout, [s.name for s in cfg.sources],
                                                 list(shard_partitions.get_partition_keys()))
        result = build_dataset_card(cfg, layout, contradiction_by_source=rates)
    except NotMaterialised as exc:
        raise Failure(description=str(exc)) from exc
    ui_md = result.markdown.split("\n---\n", 1)[-1]  # the UI shows the Markdown, not the Hub's front matter
    for name, path in result.plots.items():
        ui_md = ui_md.replace(f"](plots/{Path(path).name})", f"]({inline_png_markdown(path, name).split('](', 1)[1]}")
    return MaterializeResult(
        metadata={
            "card": MetadataValue.md(ui_md),
            "card_path": MetadataValue.path(str(result.card_path)),
            "hub_card_path": MetadataValue.path(str(result.hub_card_path)),
            **{f"plot/{k}": MetadataValue.path(str(v)) for k, v in result.plots.items()},
            "samples": result.stats.samples,
            "dagster/row_count": result.stats.samples,
            **{f"quality/{k}": v for k, v in result.quality_numbers.items()},
            "contradiction_rate_by_source": MetadataValue.json(result.contradiction_by_source),
        },
        check_results=[card_phi_scan(pipeline), card_exports_sealed(pipeline)],
    )


# ---- checks (computed with each materialisation, see assets/partition_checks.py) --------------------


@functools.lru_cache(maxsize=4)
def _identifiers(config_path: str, stamp: float) -> tuple[str, ...]:
    from medtrinity_assets.config import read_config
    from medtrinity_assets.quality.phi import identifiers_for

    return tuple(identifiers_for(read_config(config_path)))


def identifiers(pipeline: PipelineResource) -> tuple[str, ...]:
    """Identifiers of the inputs, re-scanned once per process and config version."""
    path = Path(pipeline.config_path)
    return _identifiers(str(path), path.stat().st_mtime if path.exists() else 0.0)


def export_part_checks(fmt: str, pipeline: PipelineResource, shard: str) -> list[AssetCheckResult]:
    """The shard part's integrity (SHA256SUMS, read back with the format's reader) and PHI checks."""
    from medtrinity_assets.export.build import part_dir
    from medtrinity_assets.export.sha256sums import verify_sha256sums
    from medtrinity_assets.quality.export_readers import read_back_part
    from medtrinity_assets.quality.phi import check_export_shard

    folder = part_dir(pipeline.layout(), fmt, shard)
    sums = verify_sha256sums(folder)
    n, problems = read_back_part(fmt, folder, pipeline.layout().root) if sums.ok else (0, [])
    integrity = AssetCheckResult(
        check_name=f"export_{fmt}_integrity",
        passed=sums.ok and not problems,
        metadata={"files_verified": sums.verified, "files_listed": sums.listed,
                  "mismatched": MetadataValue.json(sums.mismatched), "missing": MetadataValue.json(sums.missing),
                  "unlisted": MetadataValue.json(sums.unlisted), "samples_read_back": n,
                  "reader_problems": MetadataValue.json(problems[:20]), "error": sums.error},
    )
    phi = check_export_shard(folder, pipeline.config(), pipeline.layout(), identifiers(pipeline), pipeline.salt(), seed=shard)
    return [integrity, AssetCheckResult(check_name=f"export_{fmt}_phi", passed=phi.ok, metadata=phi.metadata(),
                                        description=phi.describe())]


def dataset_exports_check(pipeline: PipelineResource) -> AssetCheckResult:
    """Every split file re-reads, every format folder verifies, no subject in two splits."""
    from medtrinity_assets.export.build import FORMATS, dataset_dir
    from medtrinity_assets.export.sha256sums import verify_sha256sums
    from medtrinity_assets.quality.export_readers import check_export_splits, read_back_dataset, split_membership

    layout = pipeline.layout()
    per_format, problems, unsealed = {}, [], []
    for fmt in FORMATS:
        folder = dataset_dir(layout, fmt)
        if not folder.is_dir():
            continue
        if not verify_sha256sums(folder).ok:
            unsealed.append(fmt)
        per_format[fmt], found = read_back_dataset(fmt, folder)
        problems += [f"{fmt}: {p}" for p in found]
    rep = check_export_splits(split_membership(layout.exports))
    return AssetCheckResult(
        check_name="dataset_exports_splits_and_readers",
        passed=bool(per_format) and rep.ok and not problems and not unsealed,
        metadata={"samples_per_split": MetadataValue.json(per_format),
                  "subjects_spanning_splits": rep.subjects_spanning_splits,
                  "records_in_wrong_split_file": MetadataValue.json(rep.records_in_wrong_file[:20]),
                  "records_disagreeing_across_formats": MetadataValue.json(rep.records_disagreeing_across_formats[:20]),
                  "reader_problems": MetadataValue.json(problems[:20]), "folders_not_verifying": MetadataValue.json(unsealed)},
    )


def card_phi_scan(pipeline: PipelineResource) -> AssetCheckResult:
    """PHI scan over every output file under data_root (the private path table left out, reported as skipped)."""
    from medtrinity_assets.deid.report import dataset_summary
    from medtrinity_assets.quality.phi import public_words, scan_tree

    rep = scan_tree(pipeline.layout().root, identifiers(pipeline), public_words=public_words(pipeline.config()))
    redactions = dataset_summary(pipeline.layout())  # what ingest removed: pixels and free text, by kind
    return AssetCheckResult(
        check_name="dataset_card_phi_scan",
        passed=rep.ok,
        metadata={"files_scanned": rep.files_scanned, "bytes_scanned": rep.bytes_scanned, "hits": rep.hits,
                  "hits_by_kind": MetadataValue.json(rep.hits_by_kind),
                  "identifiers_searched": rep.identifiers, "files_with_hits": MetadataValue.json(rep.findings[:50]),
                  "skipped_private": MetadataValue.json(rep.skipped),
                  "redacted_at_ingest": MetadataValue.json(redactions),
                  "unreadable_files": MetadataValue.json(rep.errors[:50])},
        description=rep.describe(),
    )


def card_exports_sealed(pipeline: PipelineResource) -> AssetCheckResult:
    """Every export format folder's SHA256SUMS verifies (the hf folder's covers the card)."""
    from medtrinity_assets.export.build import FORMATS, dataset_dir
    from medtrinity_assets.export.sha256sums import verify_sha256sums

    results = {}
    for fmt in FORMATS:
        folder = dataset_dir(pipeline.layout(), fmt)
        if folder.is_dir():
            rep = verify_sha256sums(folder)
            results[fmt] = "ok" if rep.ok else (rep.error or f"{len(rep.mismatched)} mismatched, "
                                                             f"{len(rep.missing)} missing, {len(rep.unlisted)} unlisted")
    return AssetCheckResult(check_name="dataset_card_exports_sealed",
                            passed=bool(results) and all(v == "ok" for v in results.values()),
                            metadata={"formats": MetadataValue.json(results)})


defs = Definitions(assets=[*EXPORT_ASSETS, dataset_exports, dataset_card])
