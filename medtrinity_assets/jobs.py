"""Jobs that schedules and sensors target, one per partitioning of the per-source work.

- ``source_manifest_job`` [source]: rescans one source's folder.
- ``source_shard_job`` [source x shard]: every source x shard asset (images, rois, context, triplets
  and their checks) for one partition, in dependency order inside one run.

Where the steps of a run execute is a deployment choice (:mod:`medtrinity_assets.executors`).

The assets are found by importing the stage modules that exist, so a stage that has not landed yet
(or was removed) shrinks the job instead of breaking the code location.
"""

from __future__ import annotations

import importlib
import logging

from dagster import AssetKey, AssetsDefinition, AssetSelection, define_asset_job, load_assets_from_modules

from medtrinity_assets.executors import executor_from_env
from medtrinity_assets.partitions import source_partitions, source_shard_partitions

log = logging.getLogger(__name__)

STAGE_MODULES = ("ingest", "rois", "knowledge", "triplets", "quality", "exports")


def _stage_assets() -> list[AssetsDefinition]:
    mods = []
    for name in STAGE_MODULES:
        try:
            mods.append(importlib.import_module(f"medtrinity_assets.assets.{name}"))
        except ImportError as exc:  # a stage still being written: leave it out, say so
            log.warning("jobs: stage module %s not importable (%s); its assets are not in the jobs", name, exc)
    return [a for a in load_assets_from_modules(mods) if isinstance(a, AssetsDefinition)]


def keys_partitioned_by(partitions_def) -> list[AssetKey]:
    """Asset keys of the stage modules whose partitioning is exactly ``partitions_def``."""
    keys: list[AssetKey] = []
    for a in _stage_assets():
        if a.partitions_def == partitions_def:
            keys.extend(k for k in a.keys if k not in keys)
    return sorted(keys, key=lambda k: k.to_user_string())


SOURCE_SHARD_KEYS = keys_partitioned_by(source_shard_partitions)
SOURCE_KEYS = keys_partitioned_by(source_partitions)

def make_source_jobs(source_keys, source_shard_keys):
    """(source_manifest_job, source_shard_job) over the given asset keys, on the executor of the environment."""
    scan = define_asset_job(
        "source_manifest_job",
        selection=AssetSelection.assets(*source_keys),
        partitions_def=source_partitions,
        description="Rescan one source (its manifest); the followup sensor then runs its source x shard partitions.",
        tags={"medtrinity/kind": "scan"},
        executor_def=executor_from_env(),
    )
    shard = define_asset_job(
        "source_shard_job",
        selection=AssetSelection.assets(*source_shard_keys),
        partitions_def=source_shard_partitions,
        description="Every source x shard asset for one partition: images -> rois/context -> triplets.",
        tags={"medtrinity/kind": "shard"},
        executor_def=executor_from_env(),
    )
    return scan, shard


source_manifest_job, source_shard_job = make_source_jobs(SOURCE_KEYS, SOURCE_SHARD_KEYS)
JOBS = [source_manifest_job, source_shard_job] if SOURCE_KEYS and SOURCE_SHARD_KEYS else []


def downstream_within(key: AssetKey, keys: list[AssetKey]) -> list[AssetKey]:
    """``key`` and every asset of ``keys`` that depends on it (transitively), in ``keys`` order."""
    deps: dict[AssetKey, set[AssetKey]] = {}
    for a in _stage_assets():
        for k in a.keys:
            deps[k] = {d.asset_key for d in a.specs_by_key[k].deps}
    wanted = {key}
    changed = True
    while changed:
        changed = False
        for k in keys:
            if k not in wanted and deps.get(k, set()) & wanted:
                wanted.add(k)
                changed = True
    return [k for k in keys if k in wanted] or [key]
