"""ROI stage: ``lesion_model`` -> ``expert_models`` -> ``rois`` [source x shard], its checks, and the
model-update sensor.

- ``lesion_model`` trains the built-in lesion segmenter on the configured labelled volumes and registers it.
- ``expert_models`` resolves every entry of ``models.yaml`` (version + weights sha256); its data
  version is their fingerprint.
- ``rois`` turns one ``images`` partition into ROI rows (ground truth or the applicable experts, by
  the source's ``roi:`` mode) and records in ``input_versions`` the model versions it used.
- ``model_update_sensor`` reruns exactly the ``rois`` partitions whose recorded model versions differ
  from the registry's (partitions that used no model are never touched).
The work is in :mod:`medtrinity_assets.roi`; torch and MONAI load only inside the lesion model's run.
"""


import json

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    DataVersion,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset,
)

from medtrinity_assets.assets.partition_checks import check_spec, non_empty_check, schema_check
from medtrinity_assets.code_versions import code_version
from medtrinity_assets.executors import GPU_POOL, gpu_step_tags
from medtrinity_assets.input_versions import INPUT_VERSIONS_KEY, fingerprint, rois_settings_version
from medtrinity_assets.partitions import source_shard_partitions, split_key
from medtrinity_assets.resources import PipelineResource
from medtrinity_assets.roi.registry import RegistryError, ResolvedModel, current_versions, load_registry
from medtrinity_assets.roi.volumes import SourceVolumes
from medtrinity_assets.sensors import targeted_rerun_sensor
from medtrinity_assets.storage import DataLayout, read_table, rows_to_table, write_table
from medtrinity_assets.tables import IMAGE_FACTS_SCHEMA, QUARANTINE_SCHEMA, ROI_SCHEMA

STAGE = "rois"
LESION_MODEL_DIR = "lesion_seg"


def resolve_models(cfg, layout: DataLayout) -> list[ResolvedModel]:
    """The registry of the config (``models:``), resolved; no registry configured -> no models."""
    if cfg.models_file is None:
        return []
    return load_registry(cfg.models_file, layout.models)


def precomputed_masks(source):
    """The source's precomputed expert masks (``expert_masks``), or None."""
    if getattr(source, "expert_masks", None) is None:
        return None
    from medtrinity_assets.roi.precomputed import PrecomputedMasks

    return PrecomputedMasks.from_config(source.expert_masks)


def model_input_versions(cfg, layout: DataLayout) -> dict[str, str]:
    """What a rois partition is compared against: every model's version@digest and the rois settings."""
    masks = {}
    for s in cfg.sources:
        m = precomputed_masks(s) if s.roi == "expert" else None
        if m is not None:
            masks[f"masks:{m.name}"] = m.version_key
    return {**current_versions(resolve_models(cfg, layout)), **masks, **rois_settings_version(cfg)}


@asset(
    code_version=code_version("lesion_model"),
    group_name=STAGE,
    kinds={"pytorch", "monai"},
    pool=GPU_POOL,
    op_tags=gpu_step_tags(),
    description="Trains the built-in 2D U-Net lesion segmenter (CPU, seeded) on the labelled volumes that "
    "rois.lesion_model.data names (the demo: synthetic phantoms), exports TorchScript, reports held-out Dice and "
    "registers it under <data_root>/models/lesion_seg. Without training data configured it trains nothing.",
)
def lesion_model(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    from medtrinity_assets.roi.lesion_model import load_volume_source, train

    cfg = pipeline.config()
    settings = cfg.rois.lesion_model
    if not settings.data:
        reason = ("no training data configured (rois.lesion_model.data): no lesion model trained; "
                  "registry entries that point at @models/lesion_seg report it as missing")
        context.log.warning(reason)
        return MaterializeResult(metadata={"status": reason}, data_version=DataVersion("untrained"))
    data = load_volume_source(settings.data)  # the config names the data; this asset injects it
    result = train(settings, pipeline.layout().models / LESION_MODEL_DIR, data=data, log=context.log.info)
    return MaterializeResult(
        metadata={
            "version": result.version,
            "sha256": result.sha256,
            "dice_heldout": result.metrics["dice_heldout"],
            "metrics": MetadataValue.json(result.metrics),
            "settings": MetadataValue.json(result.settings),
            "weights": MetadataValue.path(str(result.weights_path)),
        },
        data_version=DataVersion(f"{result.version}@{result.sha256[:16]}"),
    )


@asset(
    code_version=code_version("expert_models"),
    deps=[lesion_model],
    group_name=STAGE,
    kinds={"yaml"},
    description="Every expert model of models.yaml resolved to version + weights sha256 (its data version); "
    "models that cannot be resolved are listed with the reason.",
)
def expert_models(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    cfg = pipeline.config()
    layout = pipeline.layout()
    try:
        models = resolve_models(cfg, layout)
    except RegistryError as exc:
        raise RuntimeError(f"the model registry is unreadable: {exc}") from None
    for m in models:
        if not m.ok:
            context.log.error(f"model {m.name}: {m.error}")
    rows = [m.summary() for m in models]
    table = pa.Table.from_pylist(
        [{**r, "applies_to": json.dumps(r["applies_to"]), "labels": json.dumps(r["labels"]),
          "metrics": json.dumps(r.get("metrics", {})), "trusted": str(r["trusted"]).lower()} for r in rows],
        schema=pa.schema([(k, pa.string()) for k in ("name", "kind", "version", "sha256", "scope", "trusted",
                                                     "applies_to", "labels", "status", "error", "metrics")]),
    )
    write_table(layout.table_path("expert_models"), table)
    versions = current_versions(models)
    def cell(text: str, limit: int) -> str:  # one markdown table cell: no pipes or line breaks
        return " ".join(text.replace("|", "/").split())[:limit]

    md = ["| model | kind | version | sha256 | trusted | scope | status |", "|---|---|---|---|---|---|---|"] + [
        f"| {r['name']} | {r['kind']} | {r['version']} | `{r['sha256'][:16]}` | {'yes' if r['trusted'] else ''} | "
        f"{cell(r['scope'], 120)} | {r['status']} {cell(r['error'], 120)} |" for r in rows
    ]
    return MaterializeResult(
        metadata={"models": MetadataValue.md("\n".join(md)), "versions": MetadataValue.json(versions),
                  "errors": sum(1 for m in models if not m.ok), "dagster/row_count": len(rows)},
        data_version=DataVersion(fingerprint(versions)),
    )


@asset(
    code_version=code_version("rois"),
    partitions_def=source_shard_partitions,
    deps=[AssetDep("images"), AssetDep(expert_models)],
    check_specs=[
        check_spec("rois", "rois_schema", "The rois partition has every column of ROI_SCHEMA with the right types.",
                   blocking=True),
        check_spec("rois", "rois_non_empty", "Warns when a partition with images has no ROI although its source is not "
                   "`roi: none`."),
        check_spec("rois", "rois_sanity", "Boxes inside [0,1]; masks decode, are non-empty, have the image's size and "
                   "agree with their boxes.", blocking=True),
    ],
    group_name=STAGE,
    kinds={"python", "parquet"},
    description="One row per ROI (every connected component): origin, model digest, confidence, COCO RLE mask, box, "
    "and facts (side, position, region, size, intensity, texture, shape, margin, relations); error rows name what "
    "failed. Beside it, the image_facts table: one row per image with its body region, organs and measurements.",
)
def rois(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    from medtrinity_assets.roi.build import RoiSettings, counts_markdown, roi_partition
    from medtrinity_assets.roi.image_facts import coverage_by_modality
    from medtrinity_assets.roi.overlay import write_preview

    cfg = pipeline.config()
    layout = pipeline.layout()
    source_name, shard = split_key(context.partition_key)
    source = cfg.source(source_name)
    part = {"source": source_name, "shard": shard}
    images = read_table(layout.table_path("images", part)).to_pylist()
    settings = RoiSettings.from_config(cfg)
    models = resolve_models(cfg, layout) if source.roi == "expert" else []
    masks = precomputed_masks(source) if source.roi == "expert" else None
    volumes = SourceVolumes(source, pipeline.salt(), cfg.shards)  # scanned only if a volume-level expert needs it
    result = roi_partition(images, layout, source.roi, models, settings, volumes=volumes, masks=masks)
    rows, stats = result.rois, result.stats
    table = rows_to_table(rows, ROI_SCHEMA)
    write_table(layout.table_path("rois", part), table)
    write_table(layout.table_path("image_facts", part), rows_to_table(result.image_facts, IMAGE_FACTS_SCHEMA))
    write_table(layout.table_path("roi_quarantine", part), rows_to_table(result.quarantine, QUARANTINE_SCHEMA))
    for q in result.quarantine[:5]:
        context.log.warning(f"quarantined for the ROI stage: {q['rel_path']}: {q['reason']}")
    try:
        from medtrinity_assets.catalog import refresh_catalog

        refresh_catalog(layout)
    except Exception as exc:  # the catalog is a convenience; the Parquet is the output
        context.log.warning(f"catalog not refreshed: {exc}")
    errors = [r for r in rows if r.get("status") == "error"]
    for r in errors[:5]:
        context.log.warning(f"{r['sample_id']} [{r['origin']}]: {r['error']}")
    if len(errors) > 5:
        context.log.warning(f"... and {len(errors) - 5} more error rows (status='error' in the rois table)")
    recorded = {**stats.models_used, **rois_settings_version(cfg)}
    metadata = {
        "roi_mode": source.roi,
        "images": stats.images,
        "images_with_rois": stats.images_with_rois,
        "rois": sum(stats.by_origin.values()),
        "error_rows": stats.errors,
        "quarantined_volumes": len(result.quarantine),
        "dropped_components": stats.dropped_components,
        "by_origin": MetadataValue.json(dict(stats.by_origin)),
        "by_label": MetadataValue.json(dict(stats.by_label)),
        "counts": MetadataValue.md(counts_markdown(stats)),
        "models_used": MetadataValue.json(stats.models_used),
        "body_regions": MetadataValue.json(dict(stats.by_region)),
        "organ_coverage": MetadataValue.json(coverage_by_modality(result.image_facts)),
        INPUT_VERSIONS_KEY: MetadataValue.json(recorded),
        "dagster/row_count": table.num_rows,
    }
    sheet = write_preview(layout, part, images, rows)
    if sheet is not None:
        from medtrinity_assets.ui_preview import inline_png_markdown

        metadata["outlines"] = MetadataValue.path(str(sheet))
        metadata["outlines_preview"] = MetadataValue.md(inline_png_markdown(sheet, "ROI outlines"))
    return MaterializeResult(metadata=metadata,
                             check_results=roi_checks(layout.table_path("rois", part), table, images, source.roi))


def roi_checks(path, table, images: list[dict], roi_mode: str) -> list[AssetCheckResult]:
    """The rois partition's checks, from the table just written to ``path`` and the partition's images."""
    from medtrinity_assets.quality.roi_sanity import check_rois

    sizes = {str(r["sample_id"]): (int(r["width"]), int(r["height"])) for r in images}
    rep = check_rois(table.to_pylist(), sizes)
    examples = (rep.bad_boxes + rep.empty_masks + rep.wrong_mask_size + rep.box_mask_mismatch
                + rep.undecodable_masks + rep.missing_image)[:20]
    return [
        schema_check("rois_schema", path, ROI_SCHEMA),
        non_empty_check("rois_non_empty", table.num_rows, expected=roi_mode != "none" and bool(images)),
        AssetCheckResult(check_name="rois_sanity", passed=rep.ok,
                         metadata={**rep.numbers(), "failing_roi_ids": MetadataValue.json(examples)}),
    ]


# ---- sensors ---------------------------------------------------------------------------------------

model_update_sensor = targeted_rerun_sensor(
    "model_update_sensor",
    AssetKey("rois"),
    lambda cfg, instance: model_input_versions(cfg, DataLayout(cfg.data_root)),
    description="Rerun the rois partitions (and what is built from them) whose recorded expert-model versions or "
    "rois settings differ from the current registry; others are left alone.",
)


defs = Definitions(
    assets=[lesion_model, expert_models, rois],
    sensors=[model_update_sensor],
)
