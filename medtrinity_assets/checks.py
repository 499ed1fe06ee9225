"""Asset checks on every stage's output, each reporting its numbers as metadata.

Blocking (ERROR) where wrong data would flow downstream: schemas, ROI geometry, subjects spanning
splits, the contradiction rate of a triplet shard, export checksums and PHI. Warnings otherwise
(empty partitions, duplicates and leaks, which the exports handle by folding and excluding).
The logic lives in ``quality/``; this module only reads the partition, calls it and reports.
"""


import functools
import inspect
import warnings
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    PreviewWarning,
    asset_check,
)

from medtrinity_assets.assets import exports as export_assets
from medtrinity_assets.partitions import shard_partitions, source_shard_partitions, split_key
from medtrinity_assets.resources import PipelineResource

# Partitioned asset checks (one evaluation per source x shard, shown per partition in the UI) are a
# Dagster "preview" feature in 1.13; we rely on them knowingly, so their notice is not repeated at
# every import of the code location.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=PreviewWarning)


def _rows(pipeline: PipelineResource, table: str, partition_key: str, columns=None) -> list[dict[str, Any]]:
    from medtrinity_assets.export.shard_inputs import read_rows

    source, shard = split_key(partition_key)
    return read_rows(pipeline.layout().table_path(table, {"source": source, "shard": shard}), columns)


def _schema_result(pipeline: PipelineResource, table: str, partition_key: str, schema, required=None) -> AssetCheckResult:
    from medtrinity_assets.quality.table_checks import check_schema

    source, shard = split_key(partition_key)
    rep = check_schema(pipeline.layout().table_path(table, {"source": source, "shard": shard}), schema, required)
    return AssetCheckResult(
        passed=rep.ok,
        severity=AssetCheckSeverity.ERROR,
        metadata={"rows": rep.rows, "file_exists": rep.exists, "missing_columns": MetadataValue.json(rep.missing_columns),
                  "wrong_types": MetadataValue.json(rep.wrong_types)},
        description=None if rep.ok else f"{table} partition {partition_key} does not match its schema; rematerialise it",
    )


def _non_empty(pipeline: PipelineResource, table: str, partition_key: str, expected: bool = True) -> AssetCheckResult:
    n = len(_rows(pipeline, table, partition_key, ["sample_id"]))
    return AssetCheckResult(passed=n > 0 or not expected, severity=AssetCheckSeverity.WARN,
                            metadata={"rows": n, "rows_expected": expected})


@functools.lru_cache(maxsize=4)
def _image_index(root: str, stamp: float) -> list[dict[str, Any]]:
    from medtrinity_assets.quality.near_duplicates import image_index
    from medtrinity_assets.storage import DataLayout

    return image_index(DataLayout(__import__("pathlib").Path(root)))


def _global_index(pipeline: PipelineResource) -> list[dict[str, Any]]:
    """All images' hash columns; cached per state of the images folder (newest file time)."""
    layout = pipeline.layout()
    base = layout.root / "tables" / "images"
    stamp = max((p.stat().st_mtime for p in base.rglob("*.parquet")), default=0.0) if base.exists() else 0.0
    return _image_index(str(layout.root), stamp)


# ---- images ------------------------------------------------------------------------------------


@asset_check(asset="images", partitions_def=source_shard_partitions, blocking=True,
             description="The images partition has every column of IMAGE_SCHEMA with the right types.")
def images_schema(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    from medtrinity_assets.tables import IMAGE_SCHEMA

    return _schema_result(pipeline, "images", context.partition_key, IMAGE_SCHEMA)


@asset_check(asset="images", partitions_def=source_shard_partitions,
             description="Warns when a source x shard partition holds no image (a shard with no subject of the source).")
def images_non_empty(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    return _non_empty(pipeline, "images", context.partition_key)


@asset_check(asset="images", partitions_def=source_shard_partitions, blocking=True,
             description="Patient-level split: no subject in two splits, every split = deid.split_of(subject_key).")
def images_split(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    from medtrinity_assets.quality.splits import check_splits

    rep = check_splits(_rows(pipeline, "images", context.partition_key, ["subject_key", "split"]))
    return AssetCheckResult(
        passed=rep.ok,
        metadata={"spanning_subjects": rep.spanning_subjects, "misassigned_images": rep.misassigned_images,
                  "unknown_split_images": rep.unknown_split_images, "missing_subject_images": rep.missing_subject_images,
                  **{f"images_{k}": v for k, v in rep.counts.items()}, **{f"subjects_{k}": v for k, v in rep.subjects.items()}},
    )


@asset_check(asset="images", partitions_def=source_shard_partitions,
             description="Near-duplicates (perceptual hash within quality.dedup_hamming bits) of this partition's "
                         "images anywhere in the dataset; the exports keep one copy with every provenance.")
def images_dedup(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    from medtrinity_assets.quality.leakage import load_eval_hashes
    from medtrinity_assets.quality.near_duplicates import compute as exclusions

    cfg = pipeline.config()
    mine = {str(r["sample_id"]) for r in _rows(pipeline, "images", context.partition_key, ["sample_id"])}
    res = exclusions(_global_index(pipeline), load_eval_hashes(cfg.eval_hashes), cfg.section("quality"),
                     root=pipeline.layout().root).dedup
    groups = [g for g in res.groups if any(m.sample_id in mine for m in g.members)]
    folded = sum(1 for g in groups for m in g.members if m.sample_id in mine and m.sample_id != g.representative)
    cross = sum(1 for g in groups if g.cross_source)
    return AssetCheckResult(
        passed=not groups, severity=AssetCheckSeverity.WARN,
        metadata={"images": len(mine), "duplicate_groups": len(groups), "cross_source_groups": cross,
                  "cross_split_groups": sum(1 for g in groups if g.cross_split), "images_folded_into_another": folded},
    )


@asset_check(asset="images", partitions_def=source_shard_partitions,
             description="Images matching the configured evaluation-set hashes (eval_hashes); excluded from exports.")
def images_leakage(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    from medtrinity_assets.quality.leakage import find_leaks, load_eval_hashes

    cfg = pipeline.config()
    hashes = load_eval_hashes(cfg.eval_hashes)
    rows = _rows(pipeline, "images", context.partition_key, ["sample_id", "source", "phash"])
    hits = find_leaks(rows, hashes, threshold=int(cfg.section("quality").get("leakage_hamming", 4)))
    return AssetCheckResult(
        passed=not hits, severity=AssetCheckSeverity.WARN,
        metadata={"images": len(rows), "eval_hashes": len(hashes), "leaked_images": len(hits),
                  "leaked_sample_ids": MetadataValue.json([h.sample_id for h in hits][:50])},
    )


# ---- rois ----------------------------------------------------------------------------------------


@asset_check(asset="rois", partitions_def=source_shard_partitions, blocking=True,
             description="The rois partition has every column of ROI_SCHEMA with the right types.")
def rois_schema(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    from medtrinity_assets.tables import ROI_SCHEMA

    return _schema_result(pipeline, "rois", context.partition_key, ROI_SCHEMA)


@asset_check(asset="rois", partitions_def=source_shard_partitions,
             description="Warns when a partition with images has no ROI although its source is not `roi: none`.")
def rois_non_empty(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    source, _ = split_key(context.partition_key)
    images = len(_rows(pipeline, "images", context.partition_key, ["sample_id"]))
    expected = pipeline.config().source(source).roi != "none" and images > 0
    return _non_empty(pipeline, "rois", context.partition_key, expected)


@asset_check(asset="rois", partitions_def=source_shard_partitions, blocking=True,
             description="Boxes inside [0,1]; masks decode, are non-empty, have the image's size and agree with their boxes.")
def rois_sanity(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    from medtrinity_assets.quality.roi_sanity import check_rois

    sizes = {str(r["sample_id"]): (int(r["width"]), int(r["height"]))
             for r in _rows(pipeline, "images", context.partition_key, ["sample_id", "width", "height"])}
    rep = check_rois(_rows(pipeline, "rois", context.partition_key), sizes)
    examples = (rep.bad_boxes + rep.empty_masks + rep.wrong_mask_size + rep.box_mask_mismatch
                + rep.undecodable_masks + rep.missing_image)[:20]
    return AssetCheckResult(passed=rep.ok, metadata={**rep.numbers(), "failing_roi_ids": MetadataValue.json(examples)})


# ---- context -------------------------------------------------------------------------------------


def _upstream_as_nothing(param: str):
    """Dagster names a check's input after its asset key, and "context" is a reserved name. A check on
    the ``context`` asset therefore takes it as an explicitly named parameter that Dagster sees as a
    Nothing-typed input (no loading: the check reads the Parquet itself) and never passes."""

    def wrap(fn):
        sig = inspect.signature(fn)
        fn.__signature__ = sig.replace(parameters=[
            p.replace(default=inspect.Parameter.empty, annotation=None) if p.name == param else p
            for p in sig.parameters.values()
        ])
        return fn

    return wrap


@asset_check(asset="context", name="context_schema", partitions_def=source_shard_partitions, blocking=True,
             description="The context partition has the columns the generator reads (CONTEXT_SCHEMA).")
@_upstream_as_nothing("sample_context")
def context_schema(context: AssetCheckExecutionContext, pipeline: PipelineResource, sample_context=None) -> AssetCheckResult:
    from medtrinity_assets.tables import CONTEXT_SCHEMA

    return _schema_result(pipeline, "context", context.partition_key, CONTEXT_SCHEMA)


@asset_check(asset="context", name="context_non_empty", partitions_def=source_shard_partitions,
             description="Warns when a partition with images has no retrieved context.")
@_upstream_as_nothing("sample_context")
def context_non_empty(context: AssetCheckExecutionContext, pipeline: PipelineResource, sample_context=None) -> AssetCheckResult:
    images = len(_rows(pipeline, "images", context.partition_key, ["sample_id"]))
    return _non_empty(pipeline, "context", context.partition_key, images > 0)


# ---- triplets ------------------------------------------------------------------------------------


@asset_check(asset="triplets", partitions_def=source_shard_partitions, blocking=True,
             description="TRIPLET_SCHEMA columns; every ok triplet has a description, every failed one a reason.")
def triplets_schema(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    from medtrinity_assets.tables import TRIPLET_SCHEMA

    res = _schema_result(pipeline, "triplets", context.partition_key, TRIPLET_SCHEMA)
    rows = _rows(pipeline, "triplets", context.partition_key, ["status", "description", "failure_reason"])
    ok_without_text = sum(1 for r in rows if r.get("status") == "ok" and not (r.get("description") or "").strip())
    failed_without_reason = sum(1 for r in rows if r.get("status") != "ok" and not (r.get("failure_reason") or "").strip())
    failed = sum(1 for r in rows if r.get("status") != "ok")
    meta = {**res.metadata, "ok_without_description": ok_without_text, "failed_without_reason": failed_without_reason,
            "failed_triplets": failed}
    return AssetCheckResult(passed=res.passed and not ok_without_text and not failed_without_reason, metadata=meta)


@asset_check(asset="triplets", partitions_def=source_shard_partitions,
             description="Warns when a partition with images has no triplet.")
def triplets_non_empty(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    images = len(_rows(pipeline, "images", context.partition_key, ["sample_id"]))
    return _non_empty(pipeline, "triplets", context.partition_key, images > 0)


@asset_check(asset="triplets", partitions_def=source_shard_partitions, blocking=True,
             description="Text–fact consistency: share of triplets whose description or attributes contradict their "
                         "facts; fails above quality.max_contradiction_rate (blocks the exports of this shard).")
def triplets_consistency(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    from medtrinity_assets.quality.consistency import score_rows

    rows = _rows(pipeline, "triplets", context.partition_key)
    rois: dict[str, list] = {}
    for r in _rows(pipeline, "rois", context.partition_key):
        if (r.get("status") or "ok") == "ok":
            rois.setdefault(str(r["sample_id"]), []).append(r)
    score = score_rows(rows, rois)
    limit = export_assets.max_contradiction_rate(pipeline.config().section("quality"))
    examples = dict(list(score.per_triplet.items())[:10])
    return AssetCheckResult(
        passed=score.contradiction_rate <= limit,
        metadata={"contradiction_rate": round(score.contradiction_rate, 4), "max_contradiction_rate": limit,
                  "scored": score.scored, "flagged": score.flagged,
                  **{f"issues/{k}": v for k, v in score.by_kind.items()},
                  "examples": MetadataValue.json(examples)},
        description=None if score.contradiction_rate <= limit else
        f"{score.flagged}/{score.scored} triplets contradict their facts; this shard will not be exported",
    )


# ---- exports -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _identifiers(config_path: str, stamp: float) -> tuple[str, ...]:
    from medtrinity_assets.config import read_config
    from medtrinity_assets.quality.phi import identifiers_for

    return tuple(identifiers_for(read_config(config_path)))


def identifiers(pipeline: PipelineResource) -> tuple[str, ...]:
    """Identifiers of the inputs, re-scanned once per process and config version."""
    from pathlib import Path

    path = Path(pipeline.config_path)
    return _identifiers(str(path), path.stat().st_mtime if path.exists() else 0.0)


def _make_export_checks(fmt: str):
    key = export_assets.export_asset_key(fmt)

    @asset_check(asset=key, name=f"export_{fmt}_integrity", partitions_def=shard_partitions, blocking=True,
                 description=f"The {fmt} shard part's SHA256SUMS verifies and its files re-read with the format's reader.")
    def _integrity(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
        from medtrinity_assets.export.build import part_dir
        from medtrinity_assets.export.sha256sums import verify_sha256sums
        from medtrinity_assets.quality.export_readers import read_back_part

        folder = part_dir(pipeline.layout(), fmt, context.partition_key)
        sums = verify_sha256sums(folder)
        n, problems = read_back_part(fmt, folder, pipeline.layout().root) if sums.ok else (0, [])
        return AssetCheckResult(
            passed=sums.ok and not problems,
            metadata={"files_verified": sums.verified, "files_listed": sums.listed,
                      "mismatched": MetadataValue.json(sums.mismatched), "missing": MetadataValue.json(sums.missing),
                      "unlisted": MetadataValue.json(sums.unlisted), "samples_read_back": n,
                      "reader_problems": MetadataValue.json(problems[:20]), "error": sums.error},
        )

    @asset_check(asset=key, name=f"export_{fmt}_phi", partitions_def=shard_partitions, blocking=True,
                 description=f"No identifier of the inputs in any file of the {fmt} shard, and no identifier "
                             "(header value, name, ID, date, time) readable by OCR in its images; reports kinds "
                             "and file names only.")
    def _phi(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
        from medtrinity_assets.export.build import part_dir
        from medtrinity_assets.quality.phi import check_export_shard

        folder = part_dir(pipeline.layout(), fmt, context.partition_key)
        res = check_export_shard(folder, pipeline.config(), pipeline.layout(), identifiers(pipeline), pipeline.salt(),
                                 seed=context.partition_key)
        return AssetCheckResult(passed=res.ok, metadata=res.metadata(), description=res.describe())

    return _integrity, _phi


export_hf_integrity, export_hf_phi = _make_export_checks("hf")
export_llava_integrity, export_llava_phi = _make_export_checks("llava")
export_webdataset_integrity, export_webdataset_phi = _make_export_checks("webdataset")
export_coco_integrity, export_coco_phi = _make_export_checks("coco")
export_vqa_integrity, export_vqa_phi = _make_export_checks("vqa")


# ---- dataset exports -----------------------------------------------------------------------------


@asset_check(asset="dataset_exports", blocking=True,
             description="Every split file of every format re-reads with its reader, every format folder's SHA256SUMS "
                         "verifies, and no subject appears in two splits in any format (nor a record in another "
                         "split's file).")
def dataset_exports_splits_and_readers(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
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
        passed=bool(per_format) and rep.ok and not problems and not unsealed,
        metadata={"samples_per_split": MetadataValue.json(per_format),
                  "subjects_spanning_splits": rep.subjects_spanning_splits,
                  "records_in_wrong_split_file": MetadataValue.json(rep.records_in_wrong_file[:20]),
                  "records_disagreeing_across_formats": MetadataValue.json(rep.records_disagreeing_across_formats[:20]),
                  "reader_problems": MetadataValue.json(problems[:20]), "folders_not_verifying": MetadataValue.json(unsealed)},
    )


# ---- dataset card --------------------------------------------------------------------------------


@asset_check(asset="dataset_card", blocking=True,
             description="PHI scan over every output file under data_root (tables, blobs, exports, card, catalog); "
                         "the private path table is left out and reported as skipped.")
def dataset_card_phi_scan(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    from medtrinity_assets.deid.report import dataset_summary
    from medtrinity_assets.quality.phi import public_words, scan_tree

    rep = scan_tree(pipeline.layout().root, identifiers(pipeline), public_words=public_words(pipeline.config()))
    redactions = dataset_summary(pipeline.layout())  # what ingest removed: pixels and free text, by kind
    return AssetCheckResult(
        passed=rep.ok,
        metadata={"files_scanned": rep.files_scanned, "bytes_scanned": rep.bytes_scanned, "hits": rep.hits,
                  "hits_by_kind": MetadataValue.json(rep.hits_by_kind),
                  "identifiers_searched": rep.identifiers, "files_with_hits": MetadataValue.json(rep.findings[:50]),
                  "skipped_private": MetadataValue.json(rep.skipped),
                  "redacted_at_ingest": MetadataValue.json(redactions),
                  "unreadable_files": MetadataValue.json(rep.errors[:50])},
        description=rep.describe(),
    )


@asset_check(asset="dataset_card", blocking=True,
             description="Every export format folder's SHA256SUMS verifies (the hf folder's covers the card).")
def dataset_card_exports_sealed(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    from medtrinity_assets.export.build import FORMATS, dataset_dir
    from medtrinity_assets.export.sha256sums import verify_sha256sums

    results = {}
    for fmt in FORMATS:
        folder = dataset_dir(pipeline.layout(), fmt)
        if folder.is_dir():
            rep = verify_sha256sums(folder)
            results[fmt] = "ok" if rep.ok else (rep.error or f"{len(rep.mismatched)} mismatched, "
                                                             f"{len(rep.missing)} missing, {len(rep.unlisted)} unlisted")
    return AssetCheckResult(passed=bool(results) and all(v == "ok" for v in results.values()),
                            metadata={"formats": MetadataValue.json(results)})
