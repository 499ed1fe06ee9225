"""Triplets stage: ``images`` + ``rois`` + ``retrieved_passages`` [source x shard] -> ``triplets`` [source x shard],
its checks, and the generator-change sensor.

The domain work lives in :mod:`medtrinity_assets.generation`; this module reads the three upstream
tables of the partition, runs the configured generator and writes one Parquet file. The generator's
identity (backend, model, version, prompt hash) is in the data version and in the recorded
``input_versions``, so switching model or prompt marks the triplets stale; ``generator_change_sensor``
reruns the partitions recorded with other generator settings or another prompt.
The text-fact consistency check (``triplets_consistency``) is blocking: a shard whose contradiction
rate is above ``quality.max_contradiction_rate`` stops what follows it in the run, and the exports of
its shard refuse it (see ``assets/exports.py``).
"""

import hashlib
import logging

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    DataVersion,
    Definitions,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from medtrinity_assets.assets.partition_checks import non_empty_result, partition_rows, schema_result
from medtrinity_assets.catalog import refresh_catalog
from medtrinity_assets.config import PipelineConfig
from medtrinity_assets.generation.inputs import assemble, context_ids, load_passages
from medtrinity_assets.generation.prompt import load_template
from medtrinity_assets.generation.run import generate_rows
from medtrinity_assets.input_versions import INPUT_VERSIONS_KEY, config_versions
from medtrinity_assets.partitions import source_shard_partitions, split_key
from medtrinity_assets.resources import GeneratorResource, PipelineResource
from medtrinity_assets.sensors import targeted_rerun_sensor
from medtrinity_assets.storage import read_table, write_table

STAGE = "triplets"

log = logging.getLogger(__name__)


@asset(
    group_name=STAGE,
    kinds={"python", "parquet"},
    partitions_def=source_shard_partitions,
    deps=[AssetDep("images"), AssetDep("rois"), AssetDep("retrieved_passages")],
    description="One image-ROI-description triplet per image: coarse caption, ROI facts, passages, five attributes, paragraph.",
)
def triplets(context: AssetExecutionContext, pipeline: PipelineResource, generator: GeneratorResource) -> MaterializeResult:
    cfg, layout = pipeline.config(), pipeline.layout()
    source, shard = split_key(context.partition_key)
    part = {"source": source, "shard": shard}
    images_path = layout.table_path("images", part)
    if not images_path.exists():
        raise Failure(f"{images_path}: images of {source}/{shard} not materialised; materialise 'images' for this partition first")
    images = read_table(images_path)
    missing = [t for t in ("rois", "retrieved_passages") if not layout.table_path(t, part).exists()]
    if missing and images.num_rows:
        raise Failure(f"{', '.join(missing)} of {source}/{shard} not materialised; materialise them before 'triplets'")
    rois = read_table(layout.table_path("rois", part)) if "rois" not in missing else None
    ctx = read_table(layout.table_path("retrieved_passages", part)) if "retrieved_passages" not in missing else None

    settings = generator.settings()
    template = load_template(str(settings.get("prompt", "description_v1")))
    top_k = int(settings.get("top_k_passages", 3))
    passages = load_passages(layout.root, context_ids(ctx)) if ctx is not None else {}
    image_rows = images.to_pylist()
    facts = assemble(image_rows, rois.to_pylist() if rois is not None else [], ctx.to_pylist() if ctx is not None else [], passages, top_k)
    backend = generator.open_backend()  # closed by the resource's teardown, whatever happens here
    table, stats, gen_id = generate_rows(list(zip(facts, image_rows)), backend, template,
                                         lambda rel: layout.resolve(rel).read_bytes(), shard,
                                         chunk_size=int(settings.get("chunk_size", 256)), top_k=top_k)
    write_table(layout.table_path("triplets", part), table)
    refresh_catalog(layout)

    samples = [r for r in table.to_pylist() if r["status"] == "ok"][:3]
    preview = "\n\n".join(f"**{r['sample_id'][:12]}** ({r['modality'] or '?'}, {r['organ'] or '?'})  \n{r['description']}" for r in samples)
    content = hashlib.sha256()
    for col in ("sample_id", "status", "description"):
        content.update(str(table.column(col).to_pylist()).encode())
    input_versions = generator_versions(cfg)
    return MaterializeResult(
        metadata={
            "generator_id": gen_id,
            "backend": backend.name,
            "model": backend.model,
            "prompt_sha256": template.sha256,
            INPUT_VERSIONS_KEY: input_versions,
            "samples": stats.samples,
            "ok": stats.ok,
            "failed": stats.failed,
            "failure_reasons": stats.failure_reasons,
            "cached": stats.cached,
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "latency": stats.latency_summary(),
            "seconds": round(stats.seconds, 3),
            "triplets_per_second": round(stats.samples / stats.seconds, 1) if stats.seconds > 0 else None,
            "dagster/row_count": table.num_rows,
            "samples_markdown": MetadataValue.md(preview or "no successful triplet in this partition"),
        },
        data_version=DataVersion(f"{gen_id.rsplit('/', 1)[-1]}-{content.hexdigest()[:16]}"),
    )



def generator_versions(cfg: PipelineConfig, instance: DagsterInstance | None = None) -> dict[str, str]:
    """The generator's identity as triplets record it: the ``generator`` settings (backend, model,
    version, seed, ...) and the prompt template's hash (``prompt:<name>``)."""
    versions = config_versions({"generator": cfg.generator.explicit()})  # what the YAML sets
    try:
        template = load_template(cfg.generator.prompt)
        versions[f"prompt:{template.name}"] = template.sha256[:16]
    except Exception as exc:  # a missing template fails the triplets run itself, with its own message
        log.warning("prompt template not readable (%s); comparing generator settings only", exc)
    return versions


generator_change_sensor = targeted_rerun_sensor(
    "generator_change_sensor", AssetKey("triplets"), generator_versions,
    description="Rerun triplets whose recorded generator settings or prompt differ from the YAML's.",
)


# ---- checks ----------------------------------------------------------------------------------------


@asset_check(asset=triplets, partitions_def=source_shard_partitions, blocking=True,
             description="TRIPLET_SCHEMA columns; every ok triplet has a description, every failed one a reason.")
def triplets_schema(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    from medtrinity_assets.tables import TRIPLET_SCHEMA

    res = schema_result(pipeline, "triplets", context.partition_key, TRIPLET_SCHEMA)
    rows = partition_rows(pipeline, "triplets", context.partition_key, ["status", "description", "failure_reason"])
    ok_without_text = sum(1 for r in rows if r.get("status") == "ok" and not (r.get("description") or "").strip())
    failed_without_reason = sum(1 for r in rows if r.get("status") != "ok" and not (r.get("failure_reason") or "").strip())
    failed = sum(1 for r in rows if r.get("status") != "ok")
    meta = {**res.metadata, "ok_without_description": ok_without_text, "failed_without_reason": failed_without_reason,
            "failed_triplets": failed}
    return AssetCheckResult(passed=res.passed and not ok_without_text and not failed_without_reason, metadata=meta)


@asset_check(asset=triplets, partitions_def=source_shard_partitions,
             description="Warns when a partition with images has no triplet.")
def triplets_non_empty(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    n_images = len(partition_rows(pipeline, "images", context.partition_key, ["sample_id"]))
    return non_empty_result(pipeline, "triplets", context.partition_key, n_images > 0)


@asset_check(asset=triplets, partitions_def=source_shard_partitions, blocking=True,
             description="Text–fact consistency: share of triplets whose description or attributes contradict their "
                         "facts; fails above quality.max_contradiction_rate (blocks the exports of this shard).")
def triplets_consistency(context: AssetCheckExecutionContext, pipeline: PipelineResource) -> AssetCheckResult:
    from medtrinity_assets.quality.consistency import score_rows

    rows = partition_rows(pipeline, "triplets", context.partition_key)
    rois: dict[str, list] = {}
    for r in partition_rows(pipeline, "rois", context.partition_key):
        if (r.get("status") or "ok") == "ok":
            rois.setdefault(str(r["sample_id"]), []).append(r)
    score = score_rows(rows, rois)
    limit = pipeline.config().quality.max_contradiction_rate
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


# The checks whose failure keeps a shard out of the exports (read by assets/exports.py).
EXPORT_GATING_CHECKS = [triplets_schema, triplets_consistency]

defs = Definitions(
    assets=[triplets],
    asset_checks=[triplets_schema, triplets_non_empty, triplets_consistency],
    sensors=[generator_change_sensor],
)
