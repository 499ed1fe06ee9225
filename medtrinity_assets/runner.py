"""Run the whole asset graph for a config, in process, through Dagster's own ``materialize``.

The graph mixes partitionings (source, corpus, source x shard, shard, none). The runner orders the
assets topologically and groups consecutive assets of one partitioning into a step; each step runs
once per partition key. Global steps (models, knowledge) go before the per-shard work that needs
them, so a (source, shard) partition usually goes from images to triplets in a single run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

STAGES = {
    "ingest": {"source_manifest", "images"},
    "rois": {"expert_models", "lesion_model", "rois"},
    "knowledge": {"knowledge_corpus", "knowledge_index", "context"},
    "triplets": {"triplets"},
}

log = logging.getLogger(__name__)


def stage_of(asset_name: str) -> str:
    """The `--stages` name an asset belongs to; quality assets, exports and the card are 'exports'."""
    return next((stage for stage, names in STAGES.items() if asset_name in names), "exports")


def _pdef_kind(pdef) -> str:
    if pdef is None:
        return "none"
    from dagster import DynamicPartitionsDefinition, MultiPartitionsDefinition, StaticPartitionsDefinition

    if isinstance(pdef, MultiPartitionsDefinition):
        return "source_shard"
    if isinstance(pdef, DynamicPartitionsDefinition):
        return pdef.name or "dynamic"
    if isinstance(pdef, StaticPartitionsDefinition):
        return "shard"
    return "other"


def plan_steps(asset_graph: dict[str, tuple[str, set[str]]]) -> list[tuple[str, list[str]]]:
    """Group assets into steps. ``asset_graph``: key -> (partitioning kind, upstream keys).

    Among the assets whose upstreams are done, global partitionings (none, source, corpus) go
    first; per-shard work waits until nothing global is ready, so it can be batched per partition.
    """
    remaining = set(asset_graph)
    steps: list[tuple[str, list[str]]] = []
    order = {"none": 0, "source": 1, "corpus": 2, "source_shard": 3, "shard": 4}
    while remaining:
        ready = sorted(k for k in remaining if not (asset_graph[k][1] & remaining))
        if not ready:
            raise ValueError(f"cycle among {sorted(remaining)}")
        kind = min((asset_graph[k][0] for k in ready), key=lambda x: order.get(x, 9))
        group: list[str] = []
        grew = True
        while grew:  # keep adding assets of this partitioning whose upstreams are done or in the group
            grew = False
            for k in sorted(remaining - set(group)):
                if asset_graph[k][0] == kind and not (asset_graph[k][1] & (remaining - set(group))):
                    group.append(k)
                    grew = True
        remaining -= set(group)
        steps.append((kind, group))
    return steps


def run_pipeline(config: Path, *, sources: list[str] | None = None, stages: list[str] | None = None,
                 quiet: bool = False) -> dict[str, Any]:
    """Materialise every asset for every (selected) source; returns a summary for people."""
    from dagster import AssetKey, AssetSelection, DagsterInstance, materialize
    from tqdm import tqdm

    from medtrinity_assets import definitions
    from medtrinity_assets.catalog import query, refresh_catalog
    from medtrinity_assets.config import load_config
    from medtrinity_assets.deid import shard_name
    from medtrinity_assets.partitions import SHARDS, source_shard_key
    from medtrinity_assets.storage import DataLayout

    cfg = load_config(config)
    layout = DataLayout(cfg.data_root)
    chosen_sources = [s.name for s in cfg.sources if not sources or s.name in sources]
    unknown = sorted(set(sources or []) - {s.name for s in cfg.sources})
    if unknown:
        raise SystemExit(f"unknown source(s) {unknown}; known: {[s.name for s in cfg.sources]}")
    if len(SHARDS) != cfg.shards:
        raise SystemExit(f"{config}: shards={cfg.shards} but the code location was loaded with {len(SHARDS)} shards")

    instance = DagsterInstance.get()
    for dim, names in (("source", [s.name for s in cfg.sources]), ("corpus", [c.name for c in cfg.corpora])):
        have = set(instance.get_dynamic_partitions(dim))
        new = [n for n in names if n not in have]
        if new:
            instance.add_dynamic_partitions(dim, new)

    defs = definitions.defs
    graph = defs.resolve_asset_graph()
    all_defs = list(defs.assets or []) + list(defs.asset_checks or [])
    resources = definitions.all_resources()
    wanted_stages = set(stages or [])
    keys: dict[str, tuple[str, set[str]]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable:
            continue
        name = key.to_user_string()
        if wanted_stages and stage_of(name) not in wanted_stages:
            continue
        keys[name] = (_pdef_kind(node.partitions_def), {p.to_user_string() for p in node.parent_keys})
    keys = {k: (kind, ups & set(keys)) for k, (kind, ups) in keys.items()}

    # Train models only when they were never materialised: retraining is a deliberate model update.
    for once in ("lesion_model",):
        if once in keys and instance.get_latest_materialization_event(AssetKey(once)) is not None:
            keys.pop(once)
            keys = {k: (kind, ups - {once}) for k, (kind, ups) in keys.items()}

    run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    failed: list[str] = []
    runs = 0
    for kind, group in plan_steps(keys):
        if kind == "none":
            partitions: list[str | None] = [None]
        elif kind == "source":
            partitions = list(chosen_sources)
        elif kind == "corpus":
            partitions = [c.name for c in cfg.corpora]
        elif kind == "source_shard":
            partitions = [source_shard_key(s, shard_name(i)) for s in chosen_sources for i in range(cfg.shards)]
        elif kind == "shard":
            partitions = [shard_name(i) for i in range(cfg.shards)]
        else:
            raise SystemExit(f"cannot run assets {group} with partitioning {kind}")
        bar = tqdm(partitions, desc=" + ".join(group), unit="partition", disable=quiet, leave=True)
        for pk in bar:
            result = materialize(
                all_defs,
                selection=AssetSelection.assets(*[AssetKey(g) for g in group]),
                partition_key=pk,
                instance=instance,
                resources=resources,
                run_config=run_config,
                raise_on_error=False,
                tags={"medtrinity/launched_by": "cli"},
            )
            runs += 1
            if not result.success:
                failed.append(f"{'+'.join(group)}[{pk or 'all'}] run {result.run_id}")
                bar.write(f"FAILED {'+'.join(group)} [{pk}]: see run {result.run_id} in the UI")
    refresh_catalog(layout)
    return {"config": str(config), "data_root": str(cfg.data_root), "dagster_home": os.environ.get("DAGSTER_HOME"),
            "runs": runs, "failed_runs": failed, **catalog_summary(layout, query)}


def catalog_summary(layout, query) -> dict[str, Any]:
    """Counts a person wants after a run, read back from the catalog."""
    out: dict[str, Any] = {}
    probes = {
        "images_by_modality": "select modality, count(*) from images group by 1 order by 1",
        "quarantine_by_reason": "select error_class, count(*) from quarantine group by 1 order by 1",
        "rois_by_origin": "select origin, count(*) from rois group by 1 order by 1",
        "triplets_by_status": "select status, count(*) from triplets group by 1 order by 1",
    }
    for name, sql in probes.items():
        try:
            rows = query(layout, sql).to_pylist()
        except Exception:  # the view does not exist yet (stage not run)
            continue
        out[name] = {str(list(r.values())[0]): list(r.values())[1] for r in rows}
    return out

