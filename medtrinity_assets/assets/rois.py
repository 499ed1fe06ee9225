"""ROI stage: ``lesion_model`` -> ``expert_models`` -> ``rois`` [source x shard], and the model-update sensor.

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
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)

from medtrinity_assets.executors import GPU_POOL, gpu_step_tags
from medtrinity_assets.input_versions import INPUT_VERSIONS_KEY, config_versions, fingerprint
from medtrinity_assets.partitions import source_shard_partitions, split_key
from medtrinity_assets.resources import PipelineResource
from medtrinity_assets.roi.registry import RegistryError, ResolvedModel, current_versions, load_registry
from medtrinity_assets.storage import DataLayout, read_table, rows_to_table, write_table
from medtrinity_assets.tables import IMAGE_FACTS_SCHEMA, ROI_SCHEMA

LESION_MODEL_DIR = "lesion_seg"


def resolve_models(cfg, layout: DataLayout) -> list[ResolvedModel]:
    """The registry of the config (``models:``), resolved; no registry configured -> no models."""
    if cfg.models_file is None:
        return []
    return load_registry(cfg.models_file, layout.models)


def rois_settings_version(cfg) -> dict[str, str]:
    """Fingerprint of the settings that shape ROI rows (training settings excluded: they act through the model)."""
    section = {k: v for k, v in cfg.section("rois").items() if k != "lesion_model"}
    return config_versions({"rois": {**section, "min_component_pixels": cfg.min_component_pixels}})


def model_input_versions(cfg, layout: DataLayout) -> dict[str, str]:
    """What a rois partition is compared against: every model's version@digest and the rois settings."""
    return {**current_versions(resolve_models(cfg, layout)), **rois_settings_version(cfg)}


@asset(
    group_name="rois",
    kinds={"pytorch", "monai"},
    pool=GPU_POOL,
    op_tags=gpu_step_tags(),
    description="Trains the built-in 2D U-Net lesion segmenter (CPU, seeded) on the labelled volumes that "
    "rois.lesion_model.data names (the demo: synthetic phantoms), exports TorchScript, reports held-out Dice and "
    "registers it under <data_root>/models/lesion_seg. Without training data configured it trains nothing.",
)
def lesion_model(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    from medtrinity_assets.roi.lesion_model import TrainSettings, load_volume_source, train

    cfg = pipeline.config()
    settings = TrainSettings.from_config(cfg.section("rois").get("lesion_model"))
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
    deps=[lesion_model],
    group_name="rois",
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
    md = ["| model | kind | version | sha256 | status |", "|---|---|---|---|---|"] + [
        f"| {r['name']} | {r['kind']} | {r['version']} | `{r['sha256'][:16]}` | {r['status']} {r['error'][:80]} |" for r in rows
    ]
    return MaterializeResult(
        metadata={"models": MetadataValue.md("\n".join(md)), "versions": MetadataValue.json(versions),
                  "errors": sum(1 for m in models if not m.ok), "dagster/row_count": len(rows)},
        data_version=DataVersion(fingerprint(versions)),
    )


@asset(
    partitions_def=source_shard_partitions,
    deps=[AssetDep("images"), AssetDep(expert_models)],
    group_name="rois",
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
    settings = RoiSettings.from_config(cfg.min_component_pixels, cfg.section("rois"))
    models = resolve_models(cfg, layout) if source.roi == "expert" else []
    result = roi_partition(images, layout, source.roi, models, settings)
    rows, stats = result.rois, result.stats
    table = rows_to_table(rows, ROI_SCHEMA)
    write_table(layout.table_path("rois", part), table)
    write_table(layout.table_path("image_facts", part), rows_to_table(result.image_facts, IMAGE_FACTS_SCHEMA))
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
    return MaterializeResult(metadata=metadata)


def _model_versions_for_sensor(cfg, instance) -> dict[str, str]:
    return model_input_versions(cfg, DataLayout(cfg.data_root))


def __getattr__(name: str):
    """``SENSORS`` is built on first access: the sensor factory imports the jobs, and the jobs import
    this module, so building it at import time would be circular."""
    if name == "SENSORS":
        from medtrinity_assets.sensors import targeted_rerun_sensor

        sensors = [
            targeted_rerun_sensor(
                "model_update_sensor",
                AssetKey("rois"),
                _model_versions_for_sensor,
                description="Rerun the rois partitions (and what depends on them) whose recorded expert-model "
                "versions or rois settings differ from the current registry; others are left alone.",
            )
        ]
        globals()["SENSORS"] = sensors
        return sensors
    raise AttributeError(name)
