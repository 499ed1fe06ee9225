"""Quality stage: ``near_duplicates`` — the dataset-wide duplicate groups and evaluation-set leaks as tables.

Computed here once (``quality/near_duplicates.compute``); the exports and the dataset card read these
tables back (``quality/near_duplicates.read``). Catalog views ``near_duplicates`` and ``eval_leaks``.
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
    from medtrinity_assets.quality import near_duplicates as nd
    from medtrinity_assets.quality.leakage import load_eval_hashes
    from medtrinity_assets.storage import rows_to_table, write_table
    from medtrinity_assets.tables import DUPLICATE_SCHEMA, LEAK_SCHEMA

    cfg = pipeline.config()
    layout = pipeline.layout()
    index = nd.image_index(layout, [s.name for s in cfg.sources])
    excl = nd.compute(index, load_eval_hashes(cfg.eval_hashes), cfg.section("quality"), root=layout.root)
    dup_rows = excl.duplicate_rows()
    write_table(layout.table_path(nd.DUPLICATES_TABLE), rows_to_table(dup_rows, DUPLICATE_SCHEMA))
    write_table(layout.table_path(nd.LEAKS_TABLE), rows_to_table(excl.leak_rows(), LEAK_SCHEMA))
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
