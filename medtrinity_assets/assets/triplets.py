"""Triplets stage: ``images`` + ``rois`` + ``context`` [source x shard] -> ``triplets`` [source x shard].

The domain work lives in :mod:`medtrinity_assets.generation`; this module reads the three upstream
tables of the partition, runs the configured generator and writes one Parquet file. The generator's
identity (backend, model, version, prompt hash) is in the data version and in the recorded
``input_versions``, so switching model or prompt marks the triplets stale.
"""


import hashlib

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    ConfigurableResource,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    Nothing,
    asset,
)

from medtrinity_assets.catalog import refresh_catalog
from medtrinity_assets.generation.backends import make_backend
from medtrinity_assets.generation.inputs import assemble, context_ids, load_passages
from medtrinity_assets.generation.prompt import load_template
from medtrinity_assets.generation.run import generate_rows
from medtrinity_assets.input_versions import INPUT_VERSIONS_KEY, config_versions
from medtrinity_assets.partitions import source_shard_partitions, split_key
from medtrinity_assets.resources import PipelineResource
from medtrinity_assets.storage import read_table, write_table


class GeneratorResource(ConfigurableResource):
    """Which generator to use; empty fields fall back to the ``generator:`` section of the sources YAML."""

    backend: str = ""
    model: str = ""
    base_url: str = ""
    model_dir: str = ""

    def settings(self, pipeline: PipelineResource) -> dict:
        s = pipeline.config().section("generator")
        for key in ("backend", "model", "base_url", "model_dir"):
            value = getattr(self, key)
            if value:
                s[key] = value
        return s


@asset(
    name="triplets",
    group_name="generation",
    kinds={"python", "parquet"},
    partitions_def=source_shard_partitions,
    deps=[AssetDep("images"), AssetDep("rois")],
    # "context" is a reserved parameter name in Dagster: the dependency gets its own input name
    ins={"sample_context": AssetIn(AssetKey("context"), dagster_type=Nothing)},
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
    missing = [t for t in ("rois", "context") if not layout.table_path(t, part).exists()]
    if missing and images.num_rows:
        raise Failure(f"{', '.join(missing)} of {source}/{shard} not materialised; materialise them before 'triplets'")
    rois = read_table(layout.table_path("rois", part)) if "rois" not in missing else None
    ctx = read_table(layout.table_path("context", part)) if "context" not in missing else None

    settings = generator.settings(pipeline)
    template = load_template(str(settings.get("prompt", "description_v1")))
    top_k = int(settings.get("top_k_passages", 3))
    passages = load_passages(layout.root, context_ids(ctx)) if ctx is not None else {}
    image_rows = images.to_pylist()
    facts = assemble(image_rows, rois.to_pylist() if rois is not None else [], ctx.to_pylist() if ctx is not None else [], passages, top_k)
    backend = make_backend(settings, cache_dir=layout.root / "cache" / "generation")
    try:
        table, stats, gen_id = generate_rows(list(zip(facts, image_rows)), backend, template,
                                             lambda rel: layout.resolve(rel).read_bytes(), shard,
                                             chunk_size=int(settings.get("chunk_size", 256)), top_k=top_k)
    finally:
        backend.close()
    write_table(layout.table_path("triplets", part), table)
    refresh_catalog(layout)

    samples = [r for r in table.to_pylist() if r["status"] == "ok"][:3]
    preview = "\n\n".join(f"**{r['sample_id'][:12]}** ({r['modality'] or '?'}, {r['organ'] or '?'})  \n{r['description']}" for r in samples)
    content = hashlib.sha256()
    for col in ("sample_id", "status", "description"):
        content.update(str(table.column(col).to_pylist()).encode())
    input_versions = {**config_versions({"generator": cfg.section("generator")}), f"prompt:{template.name}": template.sha256[:16]}
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


RESOURCES = {"generator": GeneratorResource()}
