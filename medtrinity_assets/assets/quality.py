"""Quality stage: ``near_duplicates`` — the dataset-wide duplicate groups and evaluation-set leaks as tables.

Computed here once (``quality/near_duplicates.compute``) over every image of every source; the exports
and the dataset card are downstream of this asset and read these tables back
(``quality/near_duplicates.read``). Catalog views ``near_duplicates`` and ``eval_leaks``. Its two checks
come with the materialisation, from the same result: ``no_near_duplicates`` and ``no_eval_leaks`` warn
(the exports fold duplicates into their representative and drop leaked images), with counts per source.
"""

from collections import Counter

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset,
)

from medtrinity_assets.code_versions import code_version
from medtrinity_assets.resources import PipelineResource

STAGE = "quality"


@asset(
    code_version=code_version("near_duplicates"),
    deps=[AssetDep("images")],
    group_name=STAGE,
    kinds={"python", "parquet"},
    check_specs=[
        AssetCheckSpec("no_near_duplicates", asset="near_duplicates",
                       description="Warns when images are near-duplicates of each other (within and across sources); "
                                   "the exports keep one copy with every provenance."),
        AssetCheckSpec("no_eval_leaks", asset="near_duplicates",
                       description="Warns when images match the configured evaluation-set hashes (eval_hashes); "
                                   "they are excluded from the exports."),
    ],
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
    excl = nd.compute(index, load_eval_hashes(cfg.eval_hashes), cfg.quality, root=layout.root)
    dup_rows = excl.duplicate_rows()
    write_table(layout.table_path(nd.DUPLICATES_TABLE), rows_to_table(dup_rows, DUPLICATE_SCHEMA))
    write_table(layout.table_path(nd.LEAKS_TABLE), rows_to_table(excl.leak_rows(), LEAK_SCHEMA))
    refresh_catalog(layout)
    summary = excl.dedup.summary()
    groups = excl.dedup.groups
    examples = "\n".join(
        f"- group `{g.group_id[:16]}`: " + ", ".join(f"{m.source}/{m.sample_id[:12]} ({m.distance} bits)" for m in g.members)
        for g in groups[:5]
    )
    folded_by_source = Counter(m.source for g in groups for m in g.members if m.sample_id != g.representative)
    leaked_by_source = dict(sorted(Counter(h.source for h in excl.leaks).items()))
    checks = [
        AssetCheckResult(
            check_name="no_near_duplicates", passed=not groups, severity=AssetCheckSeverity.WARN,
            metadata={"duplicate_groups": len(groups), "cross_source_groups": summary["cross_source_groups"],
                      "cross_split_groups": summary["cross_split_groups"],
                      "images_folded_into_another": excl.dedup.n_duplicates,
                      "folded_by_source": MetadataValue.json(dict(sorted(folded_by_source.items())))},
        ),
        AssetCheckResult(
            check_name="no_eval_leaks", passed=not excl.leaks, severity=AssetCheckSeverity.WARN,
            metadata={"leaked_images": len(excl.leaks), "leaked_by_source": MetadataValue.json(leaked_by_source),
                      "leaked_sample_ids": MetadataValue.json([h.sample_id for h in excl.leaks][:50])},
        ),
    ]
    return MaterializeResult(
        metadata={
            **summary,
            "leaked_images": len(excl.leaks),
            "leaked_by_source": MetadataValue.json(leaked_by_source),
            "dagster/row_count": len(dup_rows),
            "groups": MetadataValue.md(examples or "no near-duplicates"),
        },
        check_results=checks,
    )


defs = Definitions(assets=[near_duplicates])
