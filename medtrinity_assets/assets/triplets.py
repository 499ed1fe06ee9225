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
    AssetCheckResult,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    DataVersion,
    Definitions,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from medtrinity_assets.assets.partition_checks import check_spec, non_empty_check, schema_check
from medtrinity_assets.catalog import refresh_catalog
from medtrinity_assets.code_versions import code_version
from medtrinity_assets.generation.inputs import assemble, context_ids, load_passages
from medtrinity_assets.generation.prompt import load_template
from medtrinity_assets.generation.run import generate_rows
from medtrinity_assets.input_versions import INPUT_VERSIONS_KEY, generator_versions
from medtrinity_assets.partitions import source_shard_partitions, split_key
from medtrinity_assets.resources import GeneratorResource, PipelineResource
from medtrinity_assets.sensors import targeted_rerun_sensor
from medtrinity_assets.storage import read_table, write_table

STAGE = "triplets"

log = logging.getLogger(__name__)


TRIPLET_CHECK_SPECS = [
    check_spec("triplets", "triplets_schema",
               "TRIPLET_SCHEMA columns; every ok triplet has a description, every failed one a reason.", blocking=True),
    check_spec("triplets", "triplets_non_empty", "Warns when a partition with images has no triplet."),
    check_spec("triplets", "triplets_consistency",
               "Text–fact consistency: share of triplets whose description or attributes contradict their facts; fails "
               "above quality.max_contradiction_rate (and the exports of this shard refuse the partition).", blocking=True),
]
# The checks whose failure keeps a shard out of the exports (read by assets/exports.py): the blocking ones.
EXPORT_GATING_CHECKS = [spec.key for spec in TRIPLET_CHECK_SPECS if spec.blocking]


@asset(
    code_version=code_version("triplets"),
    group_name=STAGE,
    kinds={"python", "parquet"},
    partitions_def=source_shard_partitions,
    deps=[AssetDep("images"), AssetDep("rois"), AssetDep("retrieved_passages")],
    check_specs=TRIPLET_CHECK_SPECS,
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
    template = load_template(settings.prompt)
    top_k = settings.top_k_passages
    passages = load_passages(layout.root, context_ids(ctx)) if ctx is not None else {}
    image_rows = images.to_pylist()
    # what each slice shows (body region, organs, measurements): the rois stage writes it beside the rois table
    facts_path = layout.table_path("image_facts", part)
    image_facts_rows = read_table(facts_path).to_pylist() if facts_path.exists() else []
    facts = assemble(image_rows, rois.to_pylist() if rois is not None else [], ctx.to_pylist() if ctx is not None else [],
                     passages, top_k, image_facts_rows)
    backend = generator.open_backend()  # closed by the resource's teardown, whatever happens here
    table, stats, gen_id = generate_rows(list(zip(facts, image_rows)), backend, template,
                                         lambda rel: layout.resolve(rel).read_bytes(), shard,
                                         chunk_size=settings.chunk_size, top_k=top_k)
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
            "body_region_disagrees_with_metadata": sum(1 for v in table.column("agrees_with_metadata").to_pylist() if v is False),
            "samples_markdown": MetadataValue.md(preview or "no successful triplet in this partition"),
        },
        data_version=DataVersion(f"{gen_id.rsplit('/', 1)[-1]}-{content.hexdigest()[:16]}"),
        check_results=triplet_checks(layout.table_path("triplets", part), table,
                                     rois.to_pylist() if rois is not None else [],  # fresh rows: assemble() may annotate
                                     images.num_rows, cfg.quality.max_contradiction_rate),
    )


def triplet_checks(path, table, roi_rows: list[dict], n_images: int, max_contradiction_rate: float) -> list[AssetCheckResult]:
    """The triplets partition's checks, from the table just written to ``path`` and the partition's ROI rows.
    The contradiction score is computed here, once; the exports read its recorded outcome."""
    from medtrinity_assets.quality.consistency import score_rows
    from medtrinity_assets.tables import TRIPLET_SCHEMA

    rows = table.to_pylist()
    schema = schema_check("triplets_schema", path, TRIPLET_SCHEMA)
    ok_without_text = sum(1 for r in rows if r.get("status") == "ok" and not (r.get("description") or "").strip())
    failed_without_reason = sum(1 for r in rows if r.get("status") != "ok" and not (r.get("failure_reason") or "").strip())
    schema = AssetCheckResult(
        check_name="triplets_schema", passed=schema.passed and not ok_without_text and not failed_without_reason,
        metadata={**schema.metadata, "ok_without_description": ok_without_text, "failed_without_reason": failed_without_reason,
                  "failed_triplets": sum(1 for r in rows if r.get("status") != "ok")},
    )
    rois: dict[str, list] = {}
    for r in roi_rows:
        if (r.get("status") or "ok") == "ok":
            rois.setdefault(str(r["sample_id"]), []).append(r)
    score = score_rows(rows, rois)
    passed = score.contradiction_rate <= max_contradiction_rate
    consistency = AssetCheckResult(
        check_name="triplets_consistency",
        passed=passed,
        metadata={"contradiction_rate": round(score.contradiction_rate, 4), "max_contradiction_rate": max_contradiction_rate,
                  "scored": score.scored, "flagged": score.flagged,
                  **{f"issues/{k}": v for k, v in score.by_kind.items()},
                  "examples": MetadataValue.json(dict(list(score.per_triplet.items())[:10]))},
        description=None if passed else
        f"{score.flagged}/{score.scored} triplets contradict their facts; this shard will not be exported",
    )
    return [schema, non_empty_check("triplets_non_empty", len(rows), expected=n_images > 0), consistency]



generator_change_sensor = targeted_rerun_sensor(
    "generator_change_sensor", AssetKey("triplets"), generator_versions,
    description="Rerun triplets whose recorded generator settings or prompt differ from the YAML's.",
)


defs = Definitions(
    assets=[triplets],
    sensors=[generator_change_sensor],
)
