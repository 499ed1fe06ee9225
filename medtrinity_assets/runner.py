"""Run the pipeline for a config without the UI: the project's named jobs, in order, on the instance of
``DAGSTER_HOME``.

Each job of :data:`medtrinity_assets.jobs.JOBS` runs once per partition it needs (a model run, one run
per corpus, per source x shard, per shard, one card run), in the run process. A job whose assets all
have a single-run backfill policy (``source_manifest_job``) runs its partitions as one batched run when
they form a contiguous range (and falls back to one run per partition if the batch fails, so the
failing source is named). Every run carries its job's name, the ``medtrinity/source`` /
``medtrinity/shard`` tags of its partition, and the code location's repository label, so the runs show
on the UI's Runs and Jobs pages like runs launched there. ``stages`` narrows each job to the assets of
those stages (asset groups).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LAUNCHED_BY_TAG = "medtrinity/launched_by"
CODE_LOCATION = "medtrinity"  # the location name in workspace.yaml and pyproject.toml
REPOSITORY_LABEL_TAG = ".dagster/repository"  # how the UI files a run under its code location's jobs
RANGE_START_TAG, RANGE_END_TAG = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
ONCE_ASSETS = ("lesion_model",)  # trained when never materialised; retraining is a deliberate model update


@dataclass
class PlannedJob:
    """One job of the pipeline, narrowed to the selected stages, with the partitions it runs."""

    name: str
    asset_keys: list  # AssetKey, in the job's selection
    partitions: list[Any] = field(default_factory=lambda: [None])
    batched: bool = False  # every asset has a single-run backfill policy

    def launches(self, order: list[str]) -> list[list[Any]]:
        """The partitions of each run: one batch when allowed and contiguous in ``order``, else one each."""
        keys = [str(p) for p in self.partitions]
        if self.batched and len(keys) > 1 and all(k in order for k in keys):
            idx = sorted(order.index(k) for k in keys)
            if idx == list(range(idx[0], idx[-1] + 1)):
                return [sorted(self.partitions, key=lambda p: order.index(str(p)))]
        return [[p] for p in self.partitions]

    def tags_for(self, partition) -> dict[str, str]:
        from medtrinity_assets.partitions import SOURCE, split_key

        tags = {LAUNCHED_BY_TAG: "cli", REPOSITORY_LABEL_TAG: f"__repository__@{CODE_LOCATION}"}
        if isinstance(partition, list):  # a batch
            first, last = str(partition[0]), str(partition[-1])
            kind = {"source_manifest_job": SOURCE}.get(self.name, "partition")
            return {**tags, f"medtrinity/{kind}": first if first == last else f"{first}...{last}",
                    RANGE_START_TAG: first, RANGE_END_TAG: last}
        if partition is None:
            return tags
        dims = getattr(partition, "keys_by_dimension", None)
        if dims is not None:
            source, shard = split_key(partition)
            return {**tags, "medtrinity/source": source, "medtrinity/shard": shard}
        kind = {"source_manifest_job": SOURCE, "exports_job": "shard", "knowledge_job": "corpus"}.get(self.name)
        return {**tags, f"medtrinity/{kind}": str(partition)} if kind else tags


class _MultiRun:
    max_partitions_per_run = 1


_MULTI = _MultiRun()


def plan_jobs(cfg, instance, defs, jobs, sources: list[str], stages: list[str] | None) -> list[PlannedJob]:
    """The jobs to launch for ``sources`` and ``stages``, each with its partitions, in pipeline order."""
    from dagster import AssetKey, AssetSelection

    from medtrinity_assets.deid import shard_name
    from medtrinity_assets.partitions import source_shard_key

    graph = defs.resolve_asset_graph()
    wanted = AssetSelection.groups(*stages).resolve(graph) if stages else None
    shards = [shard_name(i) for i in range(cfg.shards)]
    partitions_of = {
        "knowledge_job": [c.name for c in cfg.corpora],
        "source_manifest_job": list(sources),
        "source_shard_job": [source_shard_key(s, shard) for s in sources for shard in shards],
        "exports_job": shards,
    }
    planned = []
    for job in jobs:
        keys = [k for k in graph.toposorted_asset_keys if k in job.selection.resolve(graph)]
        if wanted is not None:
            keys = [k for k in keys if k in wanted]
        for once in ONCE_ASSETS:
            if AssetKey(once) in keys and instance.get_latest_materialization_event(AssetKey(once)) is not None:
                keys.remove(AssetKey(once))
        parts = partitions_of.get(job.name, [None])
        batched = all((graph.get(k).backfill_policy or _MULTI).max_partitions_per_run is None for k in keys)
        if keys and parts:
            planned.append(PlannedJob(job.name, keys, parts, batched=batched and parts != [None]))
    return planned


def _launch(job_def, planned: PlannedJob, parts: list[Any], instance, run_config: dict, own_tags: dict[str, str]):
    """One run of the named job: a single partition, or a batch as a partition range."""
    single = parts[0] if len(parts) == 1 else None
    return job_def.execute_in_process(
        run_config=run_config,
        instance=instance,
        partition_key=str(single) if single is not None else None,
        asset_selection=planned.asset_keys,
        tags={**planned.tags_for(parts if len(parts) > 1 else single), **own_tags},
        raise_on_error=False,
    )


def run_pipeline(config: Path, *, sources: list[str] | None = None, stages: list[str] | None = None,
                 quiet: bool = False) -> dict[str, Any]:
    """Launch every (selected) job for every (selected) source; returns a summary for people."""
    from tqdm import tqdm

    from medtrinity_assets import definitions
    from medtrinity_assets.catalog import query, refresh_catalog
    from medtrinity_assets.config import load_config
    from medtrinity_assets.dagster_home import fail_orphaned_runs, open_instance, process_tags, register_partitions
    from medtrinity_assets.jobs import JOBS
    from medtrinity_assets.partitions import SHARDS
    from medtrinity_assets.storage import DataLayout

    cfg = load_config(config)
    layout = DataLayout(cfg.data_root)
    unknown = sorted(set(sources or []) - {s.name for s in cfg.sources})
    if unknown:
        raise SystemExit(f"unknown source(s) {unknown}; known: {[s.name for s in cfg.sources]}")
    unknown = sorted(set(stages or []) - set(definitions.STAGE_NAMES))
    if unknown:
        raise SystemExit(f"unknown stage(s) {unknown}; known: {list(definitions.STAGE_NAMES)}")
    if len(SHARDS) != cfg.shards:
        raise SystemExit(f"{config}: shards={cfg.shards} but the code location was loaded with {len(SHARDS)} shards")
    chosen_sources = [s.name for s in cfg.sources if not sources or s.name in sources]

    home = Path(os.environ["DAGSTER_HOME"])
    instance = open_instance(home)
    orphaned = fail_orphaned_runs(instance)
    if orphaned and not quiet:
        log.warning("marked %d run(s) failed whose process was gone: %s", len(orphaned), ", ".join(orphaned))
    register_partitions(instance, home, {"source": [s.name for s in cfg.sources],
                                         "corpus": [c.name for c in cfg.corpora]})
    own_tags = process_tags()

    defs = definitions.defs
    run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    failed: list[str] = []
    runs = 0
    order = list(instance.get_dynamic_partitions("source"))
    for planned in plan_jobs(cfg, instance, defs, JOBS, chosen_sources, stages):
        job_def = defs.resolve_job_def(planned.name)
        label = f"{planned.name}: " + " + ".join(k.to_user_string() for k in planned.asset_keys)
        bar = tqdm(total=len(planned.partitions), desc=label, unit="partition", disable=quiet, leave=True)

        def launch(parts: list[Any], job_def=job_def, planned=planned):
            return _launch(job_def, planned, parts, instance, run_config, own_tags)

        for parts in planned.launches(order):
            result = launch(parts)
            runs += 1
            if not result.success and len(parts) > 1:  # a batch failed: run each partition alone to name the culprit
                bar.write(f"batched run {result.run_id} of {planned.name} failed; running its {len(parts)} partitions one by one")
                for p in parts:
                    single = launch([p])
                    runs += 1
                    bar.update(1)
                    if not single.success:
                        failed.append(f"{planned.name}[{p}] run {single.run_id}")
                        bar.write(f"FAILED {planned.name} [{p}]: see run {single.run_id} in the UI")
                continue
            bar.update(len(parts))
            if not result.success:
                where = parts[0] if parts[0] is not None else "all"
                failed.append(f"{planned.name}[{where}] run {result.run_id}")
                bar.write(f"FAILED {planned.name} [{where}]: see run {result.run_id} in the UI")
        bar.close()
    refresh_catalog(layout)
    return {"config": str(config), "data_root": str(cfg.data_root), "dagster_home": str(home),
            "runs": runs, "failed_runs": failed, "orphaned_runs_marked_failed": orphaned, **catalog_summary(layout, query)}


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
