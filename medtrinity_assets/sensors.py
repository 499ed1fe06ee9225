"""What the stages' sensors are built from: their default status, the recorded input versions of a
partition, and the factory for "an input changed, rerun only what used it".

Each stage module declares its own sensors (``assets/ingest.py``: new sources and manifests;
``assets/rois.py``: model updates; ``assets/knowledge.py``: corpora and encoder; ``assets/triplets.py``:
generator settings and prompt). This module holds only the shared parts:

- :func:`default_sensor_status`: sensors load **stopped**; ``MEDTRINITY_AUTOMATION=on`` loads them
  running (or switch them on one by one in the UI's Automation tab).
- :func:`targeted_rerun_sensor`: each partition records the versions of what it was built from
  (metadata ``input_versions``, see :mod:`medtrinity_assets.input_versions`); the sensor compares them
  with the current versions and requests the asset and what is built from it per sample, for the
  outdated partitions only. ``RunRequest(stale_assets_only=True)`` cannot do this: it ignores partitions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from medtrinity_assets.config import PipelineConfig, read_config
from medtrinity_assets.input_versions import INPUT_VERSIONS_KEY, fingerprint, outdated_names, parse_recorded
from medtrinity_assets.jobs import PER_SAMPLE_ASSETS, source_shard_job
from medtrinity_assets.partitions import SHARDS, SOURCE, source_shard_key
from medtrinity_assets.settings import active_config_path

CurrentVersions = Callable[[PipelineConfig, DagsterInstance], Mapping[str, str]]

AUTOMATION_ENV = "MEDTRINITY_AUTOMATION"


def default_sensor_status() -> DefaultSensorStatus:
    """Stopped unless ``MEDTRINITY_AUTOMATION`` is ``on`` (``running``, ``1``, ``true``)."""
    if os.environ.get(AUTOMATION_ENV, "").strip().lower() in ("on", "running", "1", "true", "yes"):
        return DefaultSensorStatus.RUNNING
    return DefaultSensorStatus.STOPPED


def fresh_config() -> PipelineConfig:
    """Read the YAML again on every tick (settings caches it per process; a sensor must see edits)."""
    return read_config(active_config_path())


# ---------------------------------------------------------------- reading what partitions recorded


def latest_storage_ids(instance: DagsterInstance, asset_key: AssetKey) -> dict[str, int]:
    """partition key -> storage id of its latest materialisation."""
    return dict(instance.get_latest_storage_id_by_partition(asset_key, DagsterEventType.ASSET_MATERIALIZATION))


def recorded_input_versions(
    instance: DagsterInstance,
    asset_key: AssetKey,
    partition_keys: Iterable[str] | None = None,
    recorded_keys: Mapping[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """partition key -> the ``input_versions`` its latest materialisation recorded ({} if none).

    ``recorded_keys`` ({name: metadata key}) reads plain metadata entries instead, for assets that
    record an input's identity under its own key (the retrieved context records ``encoder``)."""
    latest = latest_storage_ids(instance, asset_key)
    if partition_keys is not None:
        wanted = set(partition_keys)
        latest = {pk: sid for pk, sid in latest.items() if pk in wanted}
    out: dict[str, dict[str, str]] = {}
    ids = sorted(latest.values())
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        result = instance.fetch_materializations(AssetRecordsFilter(asset_key=asset_key, storage_ids=batch), limit=len(batch))
        for record in result.records:
            mat = record.asset_materialization
            if mat is None or mat.partition is None:
                continue
            if recorded_keys:
                values = {name: getattr(mat.metadata.get(key), "value", None) for name, key in recorded_keys.items()}
                out[mat.partition] = {name: str(v) for name, v in values.items() if v is not None}
            else:
                out[mat.partition] = parse_recorded(mat.metadata.get(INPUT_VERSIONS_KEY))
    return out


def outdated_partitions(
    instance: DagsterInstance,
    asset_key: AssetKey,
    current: Mapping[str, str],
    partition_keys: Iterable[str] | None = None,
    recorded_keys: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """partition key -> names of the recorded inputs that changed, for the partitions that are out of date."""
    out: dict[str, list[str]] = {}
    for pk, recorded in recorded_input_versions(instance, asset_key, partition_keys, recorded_keys).items():
        changed = outdated_names(recorded, current)
        if changed:
            out[pk] = changed
    return out


def existing_source_shard_keys(instance: DagsterInstance) -> set[str]:
    sources = instance.get_dynamic_partitions(SOURCE)
    return {str(source_shard_key(s, shard)) for s in sources for shard in SHARDS}


# ---------------------------------------------------------------- the factory for targeted reruns


def targeted_rerun_sensor(
    name: str,
    asset_key: AssetKey,
    current_versions: CurrentVersions,
    job=source_shard_job,
    rerun_keys: list[AssetKey] | None = None,
    minimum_interval_seconds: int = 60,
    description: str | None = None,
    recorded_keys: Mapping[str, str] | None = None,
) -> SensorDefinition:
    """A sensor that requests ``rerun_keys`` (default: ``asset_key`` and what is built from it per
    sample) for exactly the partitions of ``asset_key`` whose recorded input versions differ from
    ``current_versions(config, instance)``. One run of ``job`` per partition; the run key carries the
    new versions, so a tick that comes again before the rerun finished does not request it twice."""
    rerun_selection = AssetSelection.assets(asset_key).downstream() & PER_SAMPLE_ASSETS

    @sensor(
        name=name,
        jobs=[job],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_sensor_status(),
        description=description or f"Rerun the {asset_key.to_user_string()} partitions whose recorded input versions are out of date.",
    )
    def _targeted(context: SensorEvaluationContext):
        try:
            cfg = fresh_config()
        except Exception as exc:
            return SkipReason(f"configuration unreadable: {exc}")
        current = dict(current_versions(cfg, context.instance))
        if not current:
            return SkipReason("no current input versions known yet")
        existing = existing_source_shard_keys(context.instance)
        outdated = outdated_partitions(context.instance, asset_key, current, recorded_keys=recorded_keys)
        outdated = {pk: names for pk, names in outdated.items() if pk in existing}
        if not outdated:
            return SkipReason(f"every {asset_key.to_user_string()} partition is up to date with {sorted(current)}")
        if rerun_keys is not None:
            selection = list(rerun_keys)
        else:
            graph = context.repository_def.asset_graph
            selection = sorted(rerun_selection.resolve(graph), key=lambda k: graph.toposorted_asset_keys.index(k))
        stamp = fingerprint(current)
        requests = [
            RunRequest(
                run_key=f"{name}|{pk}|{stamp}",
                job_name=job.name,
                partition_key=pk,
                asset_selection=selection,
                tags={"medtrinity/trigger": name, "medtrinity/changed": ",".join(names)[:200]},
            )
            for pk, names in sorted(outdated.items())
        ]
        context.log.info(f"{name}: {len(requests)} partition(s) out of date: {sorted(outdated)}")
        return SensorResult(run_requests=requests)

    return _targeted
