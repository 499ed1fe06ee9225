"""Export stage: ``triplets`` [source x shard] -> ``export_<format>`` [shard] -> ``dataset_exports`` -> ``dataset_card``.

Each ``export_<format>`` partition writes one shard's *part* of one format (``export_parts/<format>/<shard>/``)
and depends on that shard's triplets of every source (fan-in = number of sources) and on the dataset-wide
``near_duplicates`` (which duplicates and leaks to drop). Before writing, a shard is gated: if the latest
evaluation of a blocking check on any of its triplet partitions failed, or its contradiction rate is above
``quality.max_contradiction_rate``, the export fails and names the partition, so a broken shard never
reaches an export even when the check ran in an earlier run. ``dataset_exports`` merges the parts into the
per-split files users train on (``exports/llava/train.json`` ...; see ``export/merge.py`` for why), and
``dataset_card`` describes them (``exports/hf/README.md`` and ``card/README.md``).
"""


from pathlib import Path

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    MultiPartitionKey,
    asset,
)

from medtrinity_assets.partitions import SHARD, SOURCE, shard_partitions, source_shard_to_shard
from medtrinity_assets.resources import PipelineResource

EXPORT_FORMATS = {
    "hf": "Hugging Face Parquet (id, image with embedded bytes, caption, ROIs, attributes, provenance); "
          "load with datasets.load_dataset('parquet', ...).",
    "llava": "LLaVA conversation JSON (caption-style instruction and the description), per split.",
    "webdataset": "WebDataset tar shards per split: <key>.png, <key>.json, <key>.txt.",
    "coco": "COCO instance JSON of the ROIs per split (masks as RLE, origin and model version on every annotation); "
            "category names here, ids from the dataset-wide map when merged.",
    "vqa": "Question-answer candidates from the facts (16 question types incl. relations, counting, size in mm, "
           "multiple choice); yes/no balanced when merged.",
}
TRIPLET_BLOCKING_CHECKS = ("triplets_schema", "triplets_consistency")
DEFAULT_MAX_CONTRADICTION_RATE = 0.05


def export_asset_key(fmt: str) -> AssetKey:
    return AssetKey(f"export_{fmt}")


def max_contradiction_rate(quality: dict) -> float:
    return float(quality.get("max_contradiction_rate", DEFAULT_MAX_CONTRADICTION_RATE))


def failed_blocking_checks(instance, shard: str, sources: list[str]) -> list[str]:
    """'<check> on <shard|source>' for every triplet partition whose latest blocking check failed."""
    from dagster import AssetCheckKey
    from dagster._core.event_api import PartitionKeyFilter
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    out = []
    storage = instance.event_log_storage
    for source in sources:
        pk = str(MultiPartitionKey({SOURCE: source, SHARD: shard}))
        for name in TRIPLET_BLOCKING_CHECKS:
            key = AssetCheckKey(AssetKey("triplets"), name)
            try:
                recs = storage.get_asset_check_execution_history(key, limit=1, partition_filter=PartitionKeyFilter(key=pk))
            except Exception:  # storage without partitioned check history: the inline gate still runs
                recs = []
            if recs and recs[0].status == AssetCheckExecutionRecordStatus.FAILED:
                ev = recs[0].evaluation
                if ev is None or getattr(ev, "blocking", True):
                    out.append(f"{name} on {pk}")
    return out


def contradiction_gate(layout, shard: str, sources: list[str], quality: dict) -> dict[str, float]:
    """Contradiction rate of every triplet partition of the shard that is above the maximum."""
    from medtrinity_assets.export.shard_inputs import read_rows
    from medtrinity_assets.quality.consistency import score_rows

    limit = max_contradiction_rate(quality)
    over = {}
    for source in sources:
        part = {"source": source, "shard": shard}
        rows = read_rows(layout.table_path("triplets", part))
        if not rows:
            continue
        rois: dict[str, list] = {}
        for r in read_rows(layout.table_path("rois", part)):
            if (r.get("status") or "ok") == "ok":
                rois.setdefault(str(r["sample_id"]), []).append(r)
        score = score_rows(rows, rois)
        if score.contradiction_rate > limit:
            over[source] = round(score.contradiction_rate, 4)
    return over


def _make_export_asset(fmt: str, description: str):
    @asset(
        name=f"export_{fmt}",
        partitions_def=shard_partitions,
        deps=[AssetDep("triplets", partition_mapping=source_shard_to_shard), AssetDep("near_duplicates")],
        group_name="exports",
        kinds={"python", "parquet" if fmt == "hf" else "json"},
        description=f"One shard's part of the {fmt} export (export_parts/{fmt}/<shard>/): " + description,
    )
    def _export(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
        from medtrinity_assets.export.build import export_part
        from medtrinity_assets.export.sha256sums import verify_sha256sums
        from medtrinity_assets.quality import near_duplicates

        cfg = pipeline.config()
        layout = pipeline.layout()
        shard = context.partition_key
        sources = [s.name for s in cfg.sources]
        quality = cfg.section("quality")
        blocked = failed_blocking_checks(context.instance, shard, sources)
        over = contradiction_gate(layout, shard, sources, quality)
        if blocked or over:
            raise Failure(
                description=(
                    f"shard {shard} is blocked from the {fmt} export: "
                    + "; ".join([*(f"failed {b}" for b in blocked),
                                 *(f"contradiction rate {r:.1%} of source {s} is above "
                                   f"quality.max_contradiction_rate={max_contradiction_rate(quality):.1%}"
                                   for s, r in over.items())])
                    + ". Fix or regenerate those triplet partitions, then rerun this export."
                ),
                metadata={"blocked_checks": MetadataValue.json(blocked), "contradiction_rates": MetadataValue.json(over)},
            )
        try:
            excl = near_duplicates.read(layout)
        except near_duplicates.NotMaterialised as exc:
            raise Failure(description=str(exc)) from exc
        res = export_part(layout, fmt, shard, sources, excl)
        sums = verify_sha256sums(res.folder)
        if not sums.ok:
            raise Failure(description=f"{res.folder}: SHA256SUMS does not verify right after writing "
                                      f"(mismatched {sums.mismatched}, missing {sums.missing}); disk problem?")
        context.log.info(f"{fmt} shard {shard}: {res.selection.exported} samples -> {res.folder}")
        return MaterializeResult(
            metadata={
                "folder": MetadataValue.path(str(res.folder)),
                "samples": res.selection.exported,
                "dagster/row_count": res.selection.exported,
                **{f"selection/{k}": v for k, v in res.selection.as_metadata().items()},
                "files": MetadataValue.json(res.files),
                "sources": MetadataValue.json(res.sources),
                "sha256sums_files": sums.verified,
                "leaked_images_total": len(excl.leaks),
                "duplicate_groups_total": len(excl.dedup.groups),
                "seconds": round(res.seconds, 3),
            }
        )

    return _export


export_hf = _make_export_asset("hf", EXPORT_FORMATS["hf"])
export_llava = _make_export_asset("llava", EXPORT_FORMATS["llava"])
export_webdataset = _make_export_asset("webdataset", EXPORT_FORMATS["webdataset"])
export_coco = _make_export_asset("coco", EXPORT_FORMATS["coco"])
export_vqa = _make_export_asset("vqa", EXPORT_FORMATS["vqa"])
EXPORT_ASSETS = [export_hf, export_llava, export_webdataset, export_coco, export_vqa]


@asset(
    deps=[AssetDep(a.key) for a in EXPORT_ASSETS],
    group_name="exports",
    kinds={"python", "json"},
    description="The dataset as users get it: every format's shard parts merged into per-split files "
                "(exports/llava/train.json, exports/coco/annotations_test.json, exports/hf/data/<split>-*.parquet, "
                "exports/webdataset/<split>-*.tar, exports/vqa/<split>.jsonl), one category map "
                "(exports/categories.json), each image stored once (hard links to the blobs), yes/no VQA answers "
                "balanced per question type and split.",
)
def dataset_exports(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    from medtrinity_assets.export.merge import PartProblem, merge_dataset
    from medtrinity_assets.export.vqa import summarise

    layout = pipeline.layout()
    try:
        merged = merge_dataset(layout, shard_partitions.get_partition_keys())
    except PartProblem as exc:
        raise Failure(description=str(exc)) from exc
    if not merged.formats:
        raise Failure(description="no export part to merge: materialise the export_<format> partitions first")
    meta: dict = {}
    for fmt, m in merged.formats.items():
        context.log.info(f"{fmt}: {m.samples} from shards {m.shards} -> {m.folder}"
                         + (f"; no part yet for {m.missing_shards}" if m.missing_shards else ""))
        meta[f"{fmt}/samples"] = MetadataValue.json(m.samples)
        meta[f"{fmt}/folder"] = MetadataValue.path(str(m.folder))
        if m.missing_shards:
            meta[f"{fmt}/missing_shards"] = MetadataValue.json(m.missing_shards)
        if fmt in ("llava", "coco", "vqa"):
            meta[f"{fmt}/images_linked"] = m.images.linked
            meta[f"{fmt}/images_copied"] = m.images.copied
    vqa_folder = merged.formats.get("vqa")
    if vqa_folder is not None:
        import json

        pairs = [json.loads(line) for f in sorted(vqa_folder.folder.glob("*.jsonl"))
                 for line in f.read_text(encoding="utf-8").splitlines() if line]
        meta["vqa/summary"] = MetadataValue.json(summarise(pairs))
    return MaterializeResult(metadata={
        **meta,
        "categories": len(merged.categories.categories),
        "new_categories": MetadataValue.json(merged.new_categories),
        "category_map": MetadataValue.md("\n".join(["| id | label | kind |", "|---:|---|---|"] + [
            f"| {c['id']} | {c['name']} | {c['kind']} |" for c in merged.categories.categories])),
        "dagster/row_count": sum(merged.formats["hf"].samples.values()) if "hf" in merged.formats else 0,
    })


@asset(
    deps=[AssetDep("dataset_exports"), AssetDep("near_duplicates")],
    group_name="exports",
    kinds={"python", "markdown"},
    description="Dataset card (Hub YAML front matter, Markdown, PNG plots) at exports/hf/README.md and card/README.md: "
                "sources, licences and citations, columns and conventions, splits, categories, ROI origins, VQA "
                "figures, quality results read from near_duplicates and the exports, limitations.",
)
def dataset_card(context: AssetExecutionContext, pipeline: PipelineResource) -> MaterializeResult:
    from medtrinity_assets.export.dataset_card import build_dataset_card
    from medtrinity_assets.quality.near_duplicates import NotMaterialised
    from medtrinity_assets.ui_preview import inline_png_markdown

    cfg = pipeline.config()
    layout = pipeline.layout()
    try:
        result = build_dataset_card(cfg, layout)
    except NotMaterialised as exc:
        raise Failure(description=str(exc)) from exc
    ui_md = result.markdown.split("\n---\n", 1)[-1]  # the UI shows the Markdown, not the Hub's front matter
    for name, path in result.plots.items():
        ui_md = ui_md.replace(f"](plots/{Path(path).name})", f"]({inline_png_markdown(path, name).split('](', 1)[1]}")
    return MaterializeResult(
        metadata={
            "card": MetadataValue.md(ui_md),
            "card_path": MetadataValue.path(str(result.card_path)),
            "hub_card_path": MetadataValue.path(str(result.hub_card_path)),
            **{f"plot/{k}": MetadataValue.path(str(v)) for k, v in result.plots.items()},
            "samples": result.stats.samples,
            "dagster/row_count": result.stats.samples,
            **{f"quality/{k}": v for k, v in result.quality_numbers.items()},
            "contradiction_rate_by_source": MetadataValue.json(result.contradiction_by_source),
        }
    )
