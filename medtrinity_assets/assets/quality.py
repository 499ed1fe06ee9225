"""Quality stage: ``near_duplicates`` — the dataset-wide duplicate groups and evaluation-set leaks as tables.

The exports recompute the same (deterministic) exclusions per shard; this asset makes them visible in
the catalog (views ``near_duplicates`` and ``eval_leaks``) and in the UI with their counts.
"""

from dagster import AssetDep, AssetExecutionContext, MaterializeResult, MetadataValue, asset

from medtrinity_assets.resources import PipelineResource


@asset(
    deps=[AssetDep("images")],
    group_name="quality",
    kinds={"python", "parquet"},
    description="Near-duplicate image groups (perceptual hash within quality.dedup_hamming bits, within and across "
                "sources) and images matching the evaluation-set hashes (eval_hashes), for the whole dataset.",
)
def near_duplicates(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    from medtrinity_assets.catalog import refresh_catalog
    from medtrinity_assets.export.shard_inputs import exclusions, image_index
    from medtrinity_assets.quality.leakage import load_eval_hashes
    from medtrinity_assets.storage import rows_to_table, write_table
    from medtrinity_assets.tables import DUPLICATE_SCHEMA, LEAK_SCHEMA

    cfg = pipeline.config()
    layout = pipeline.layout()
    index = image_index(layout, [s.name for s in cfg.sources])
    excl = exclusions(index, load_eval_hashes(cfg.eval_hashes), cfg.section("quality"), root=layout.root)
    dup_rows = [
        {"group_id": g.group_id, "sample_id": m.sample_id, "source": m.source, "split": m.split,
         "is_representative": m.sample_id == g.representative, "distance": m.distance,
         "cross_source": g.cross_source, "cross_split": g.cross_split}
        for g in excl.dedup.groups for m in g.members
    ]
    leak_rows = [{"sample_id": h.sample_id, "source": h.source, "distance": h.distance} for h in excl.leaks]
    write_table(layout.table_path("near_duplicates"), rows_to_table(dup_rows, DUPLICATE_SCHEMA))
    write_table(layout.table_path("eval_leaks"), rows_to_table(leak_rows, LEAK_SCHEMA))
    refresh_catalog(layout)
    summary = excl.dedup.summary()
    examples = "\n".join(
        f"- group `{g.group_id[:16]}`: " + ", ".join(f"{m.source}/{m.sample_id[:12]} ({m.distance} bits)" for m in g.members)
        for g in excl.dedup.groups[:5]
    )
    return MaterializeResult(
        metadata={
            **summary,
            "leaked_images": len(excl.leaks),
            "leaked_by_source": MetadataValue.json(
                {s: sum(1 for h in excl.leaks if h.source == s) for s in sorted({h.source for h in excl.leaks})}),
            "dagster/row_count": len(dup_rows),
            "groups": MetadataValue.md(examples or "no near-duplicates"),
        }
    )
