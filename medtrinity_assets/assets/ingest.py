"""Ingest stage: ``source_manifest`` [source] -> ``images`` [source x shard]."""


from dagster import (
    AssetDep,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from medtrinity_assets.catalog import refresh_catalog
from medtrinity_assets.config import source_path_problem
from medtrinity_assets.deid.report import summarise_records
from medtrinity_assets.ingest import build_images, build_manifest, count_by
from medtrinity_assets.partitions import (
    source_partitions,
    source_shard_partitions,
    source_to_source_shard,
    split_key,
)
from medtrinity_assets.resources import PipelineResource
from medtrinity_assets.storage import write_table
from medtrinity_assets.ui_preview import contact_sheet, inline_png_markdown, markdown_preview


def _schema_metadata(table) -> TableSchema:
    return TableSchema(columns=[TableColumn(f.name, str(f.type)) for f in table.schema])


@asset(
    partitions_def=source_partitions,
    group_name="ingest",
    kinds={"python", "parquet"},
    description="Every readable item of a source (headers only), with provenance and its shard; unreadable inputs go to quarantine.",
)
def source_manifest(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    cfg = pipeline.config()
    layout = pipeline.layout()
    source = cfg.source(context.partition_key)
    problem = source_path_problem(source)  # a missing folder is an error, not an empty source
    if problem:
        raise Failure(f"{cfg.config_path}: source '{source.name}' {problem}")
    manifest, quarantine = build_manifest(source, salt=pipeline.salt(), shards=cfg.shards, layout=layout)
    write_table(layout.table_path("manifest", {"source": source.name}), manifest)
    write_table(layout.table_path("quarantine", {"source": source.name, "stage": "scan"}), quarantine)
    refresh_catalog(layout)
    for row in quarantine.to_pylist():
        context.log.warning(f"quarantined {row['rel_path']}: {row['reason']}")
    return MaterializeResult(
        metadata={
            "items": manifest.num_rows,
            "quarantined": quarantine.num_rows,
            "by_kind": count_by(manifest, "kind"),
            "by_shard": count_by(manifest, "shard"),
            "by_modality": count_by(manifest, "modality"),
            "quarantine_reasons": count_by(quarantine, "error_class"),
            "dagster/row_count": manifest.num_rows,
            "dagster/column_schema": _schema_metadata(manifest),
            "preview": MetadataValue.md(markdown_preview(manifest, ["kind", "rel_path", "n_frames", "modality", "shard"])),
        }
    )


@asset(
    partitions_def=source_shard_partitions,
    deps=[AssetDep(source_manifest, partition_mapping=source_to_source_shard)],
    group_name="ingest",
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
        "dagster/column_schema": _schema_metadata(result.table),
        "preview": MetadataValue.md(
            markdown_preview(result.table, ["sample_id", "modality", "organ", "slice_index", "width", "height", "window"])
        ),
        "deid": MetadataValue.json(summarise_records(result.table.column("deid_json").to_pylist())),
    }
    sheet = contact_sheet(layout, result.table, layout.preview_path("images", part))
    if sheet is not None:
        metadata["thumbnails"] = MetadataValue.path(str(sheet))
        metadata["thumbnails_preview"] = MetadataValue.md(inline_png_markdown(sheet, "thumbnails"))
    return MaterializeResult(metadata=metadata)
