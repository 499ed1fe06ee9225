"""Ingest stage: ``source_manifest`` [source] -> ``images`` [source x shard], their checks, and the
sensors that turn new sources and rescanned manifests into runs.

- ``source_sync_sensor``: a new entry in the sources YAML becomes a ``source`` partition and gets its
  first run (its manifest); corpora are the knowledge stage's ``knowledge_corpus_sensor``.
- ``manifest_followup_sensor``: when a source's manifest is newer than a shard's ``images``, that
  source x shard partition is requested (one run per manifest version, by run key).
"""

from dagster import (
    AssetCheckResult,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    Definitions,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    sensor,
)

from medtrinity_assets.assets.partition_checks import check_spec, non_empty_check, schema_check, schema_metadata
from medtrinity_assets.catalog import refresh_catalog
from medtrinity_assets.code_versions import code_version
from medtrinity_assets.config import source_path_problem
from medtrinity_assets.deid.report import summarise_records
from medtrinity_assets.ingest import build_images, build_manifest, count_by
from medtrinity_assets.jobs import source_manifest_job, source_shard_job
from medtrinity_assets.partitions import (
    SHARDS,
    SOURCE,
    source_partitions,
    source_shard_key,
    source_shard_partitions,
    source_to_source_shard,
    split_key,
)
from medtrinity_assets.resources import PipelineResource
from medtrinity_assets.sensors import default_sensor_status, fresh_config, latest_storage_ids
from medtrinity_assets.storage import write_table
from medtrinity_assets.ui_preview import contact_sheet, inline_png_markdown, markdown_preview

STAGE = "ingest"


@asset(
    partitions_def=source_partitions,
    # A backfill of many sources runs as one run (a manifest is a cheap header scan, with no check and no
    # data version of its own per partition): the run's fixed cost is paid once, not once per source.
    backfill_policy=BackfillPolicy.single_run(),
    code_version=code_version("source_manifest"),
    group_name=STAGE,
    kinds={"python", "parquet"},
    description="Every readable item of a source (headers only), with provenance and its shard; unreadable inputs go to quarantine.",
)
def source_manifest(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    cfg = pipeline.config()
    layout = pipeline.layout()
    sources = [cfg.source(name) for name in context.partition_keys]  # one source, or a batch of them
    problems = [f"source '{s.name}' {p}" for s in sources if (p := source_path_problem(s))]
    if problems:  # a missing folder is an error, not an empty source
        raise Failure(f"{cfg.config_path}: " + "; ".join(problems))
    for source in sources:
        manifest, quarantine = build_manifest(source, salt=pipeline.salt(), shards=cfg.shards, layout=layout)
        write_table(layout.table_path("manifest", {"source": source.name}), manifest)
        write_table(layout.table_path("quarantine", {"source": source.name, "stage": "scan"}), quarantine)
        for row in quarantine.to_pylist():
            context.log.warning(f"quarantined {row['rel_path']}: {row['reason']}")
        context.add_asset_metadata({
            "items": manifest.num_rows,
            "quarantined": quarantine.num_rows,
            "by_kind": count_by(manifest, "kind"),
            "by_shard": count_by(manifest, "shard"),
            "by_modality": count_by(manifest, "modality"),
            "quarantine_reasons": count_by(quarantine, "error_class"),
            "dagster/row_count": manifest.num_rows,
            "dagster/column_schema": schema_metadata(manifest),
            "preview": MetadataValue.md(markdown_preview(manifest, ["kind", "rel_path", "n_frames", "modality", "shard"])),
        }, partition_key=source.name)
    refresh_catalog(layout)
    return MaterializeResult()


@asset(
    partitions_def=source_shard_partitions,
    deps=[AssetDep(source_manifest, partition_mapping=source_to_source_shard)],
    code_version=code_version("images"),
    check_specs=[
        check_spec("images", "images_schema", "The images partition has every column of IMAGE_SCHEMA with the right types.",
                   blocking=True),
        check_spec("images", "images_non_empty",
                   "Warns when a source x shard partition holds no image (a shard with no subject of the source)."),
        check_spec("images", "images_split",
                   "Patient-level split: no subject in two splits, every split = deid.split_of(subject_key).", blocking=True),
    ],
    group_name=STAGE,
    kinds={"python", "parquet"},
    description="One row per 2D image: slices of volumes and 2D inputs, windowed, resized, stored as content-addressed PNG.",
)
def images(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    cfg = pipeline.config()
    layout = pipeline.layout()
    source_name, shard = split_key(context.partition_key)
    source = cfg.source(source_name)
    result = build_images(cfg, source, shard, layout, salt=pipeline.salt())
    part = {"source": source_name, "shard": shard}
    write_table(layout.table_path("images", part), result.table)
    write_table(layout.table_path("quarantine", {**part, "stage": "load"}), result.quarantine)
    refresh_catalog(layout)
    for row in result.quarantine.to_pylist():
        context.log.warning(f"quarantined {row['rel_path']}: {row['reason']}")
    context.log.info(f"{source_name}/{shard}: {result.items_read} items -> {result.slices} images")
    metadata = {
        "images": result.slices,
        "items_read": result.items_read,
        "quarantined": result.quarantine.num_rows,
        "by_modality": count_by(result.table, "modality"),
        "by_split": count_by(result.table, "split"),
        "quarantine_reasons": count_by(result.quarantine, "error_class"),
        "dagster/row_count": result.table.num_rows,
        "dagster/column_schema": schema_metadata(result.table),
        "preview": MetadataValue.md(
            markdown_preview(result.table, ["sample_id", "modality", "organ", "slice_index", "width", "height", "window"])
        ),
        "deid": MetadataValue.json(summarise_records(result.table.column("deid_json").to_pylist())),
    }
    sheet = contact_sheet(layout, result.table, layout.preview_path("images", part))
    if sheet is not None:
        metadata["thumbnails"] = MetadataValue.path(str(sheet))
        metadata["thumbnails_preview"] = MetadataValue.md(inline_png_markdown(sheet, "thumbnails"))
    return MaterializeResult(metadata=metadata, check_results=image_checks(layout.table_path("images", part), result.table))


def image_checks(path, table) -> list[AssetCheckResult]:
    """The images partition's checks, from the table just written to ``path``."""
    from medtrinity_assets.quality.splits import check_splits
    from medtrinity_assets.tables import IMAGE_SCHEMA

    rep = check_splits(table.select(["subject_key", "split"]).to_pylist())
    split = AssetCheckResult(
        check_name="images_split",
        passed=rep.ok,
        metadata={"spanning_subjects": rep.spanning_subjects, "misassigned_images": rep.misassigned_images,
                  "unknown_split_images": rep.unknown_split_images, "missing_subject_images": rep.missing_subject_images,
                  **{f"images_{k}": v for k, v in rep.counts.items()}, **{f"subjects_{k}": v for k, v in rep.subjects.items()}},
    )
    return [schema_check("images_schema", path, IMAGE_SCHEMA), non_empty_check("images_non_empty", table.num_rows), split]


# ---- sensors ---------------------------------------------------------------------------------------


@sensor(
    name="source_sync_sensor",
    jobs=[source_manifest_job],
    minimum_interval_seconds=30,
    default_status=default_sensor_status(),
    description="New sources in the YAML become partitions and get their first run (corpora: knowledge_corpus_sensor).",
)
def source_sync_sensor(context: SensorEvaluationContext):
    try:
        cfg = fresh_config()
    except Exception as exc:
        return SkipReason(f"configuration unreadable, no partitions added: {exc}")
    have_sources = set(context.instance.get_dynamic_partitions(SOURCE))
    new_sources = [s.name for s in cfg.sources if s.name not in have_sources]
    gone = sorted(have_sources - {s.name for s in cfg.sources})
    if gone:  # kept: their outputs stay; deleting a partition is an operator's decision
        context.log.info(f"sources no longer in the YAML (partitions kept): {gone}")
    if not new_sources:
        return SkipReason("every source of the YAML is already a partition")
    runs = [
        RunRequest(run_key=f"first|{name}", job_name=source_manifest_job.name, partition_key=name,
                   tags={"medtrinity/source": name, "medtrinity/trigger": "new_source"})
        for name in new_sources
    ]
    return SensorResult(run_requests=runs, dynamic_partitions_requests=[source_partitions.build_add_request(new_sources)])


@sensor(
    name="manifest_followup_sensor",
    jobs=[source_shard_job],
    minimum_interval_seconds=30,
    default_status=default_sensor_status(),
    description="Runs a source's source x shard partitions whose images are older than the source's latest manifest.",
)
def manifest_followup_sensor(context: SensorEvaluationContext):
    manifests = latest_storage_ids(context.instance, AssetKey("source_manifest"))
    if not manifests:
        return SkipReason("no source manifest materialised yet")
    images_done = latest_storage_ids(context.instance, AssetKey("images"))
    existing = set(context.instance.get_dynamic_partitions(SOURCE))
    requests = []
    for source, manifest_id in sorted(manifests.items()):
        if source not in existing:
            continue
        for shard in SHARDS:
            pk = source_shard_key(source, shard)
            if images_done.get(str(pk), -1) > manifest_id:
                continue
            requests.append(
                RunRequest(run_key=f"{source}|{shard}|m{manifest_id}", job_name=source_shard_job.name, partition_key=pk,
                           tags={"medtrinity/source": source, "medtrinity/shard": shard, "medtrinity/trigger": "manifest"})
            )
    if not requests:
        return SkipReason("every source x shard partition is newer than its manifest")
    return SensorResult(run_requests=requests)


defs = Definitions(
    assets=[source_manifest, images],
    sensors=[source_sync_sensor, manifest_followup_sensor],
)
