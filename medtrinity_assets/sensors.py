"""Sensors that keep the partitions in step with the sources YAML and with the models and settings.

- ``source_sync_sensor``: a new entry in the sources YAML becomes a ``source`` partition (and a new
  knowledge corpus a ``corpus`` partition) and gets its first run (the source's manifest).
- ``manifest_followup_sensor``: when a source's manifest is newer than a shard's ``images``, that
  source x shard partition is requested (one run per manifest version, by run key).
- ``targeted_rerun_sensor(...)``: a factory for "an input changed, rerun only what used it". Each
  partition records the versions of what it was built from (metadata ``input_versions``, see
  :mod:`medtrinity_assets.input_versions`); the sensor compares them with the current versions and
  requests the asset and its downstream source x shard assets for the outdated partitions only.
  ``RunRequest(stale_assets_only=True)`` cannot do this: it ignores partitions.
  ``generator_change_sensor`` (triplets vs the ``generator`` settings) and ``encoder_change_sensor``
  (context's recorded ``encoder`` vs the observed ``knowledge_encoder`` version) are built from it;
  the ROI stage builds its ``model_update_sensor`` the same way.

Set ``MEDTRINITY_AUTOMATION=stopped`` to load every sensor stopped (tests, a read-only UI).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping

from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from medtrinity_assets.config import PipelineConfig, read_config
from medtrinity_assets.input_versions import INPUT_VERSIONS_KEY, config_versions, fingerprint, outdated_names, parse_recorded
from medtrinity_assets.jobs import (
    JOBS,
    SOURCE_SHARD_KEYS,
    downstream_within,
    source_manifest_job,
    source_shard_job,
)
from medtrinity_assets.partitions import SHARDS, SOURCE, source_partitions, source_shard_key
from medtrinity_assets.settings import active_config_path

log = logging.getLogger(__name__)

CurrentVersions = Callable[[PipelineConfig, DagsterInstance], Mapping[str, str]]


def _default_status() -> DefaultSensorStatus:
    if os.environ.get("MEDTRINITY_AUTOMATION", "").lower() in ("stopped", "off", "0", "false"):
        return DefaultSensorStatus.STOPPED
    return DefaultSensorStatus.RUNNING


def _fresh_config() -> PipelineConfig:
    """Read the YAML again on every tick (settings caches it per process; a sensor must see edits)."""
    return read_config(active_config_path())


# ---------------------------------------------------------------- reading what partitions recorded


def latest_storage_ids(instance: DagsterInstance, asset_key: AssetKey) -> dict[str, int]:
    """partition key -> storage id of its latest materialisation."""
    return dict(
        instance.event_log_storage.get_latest_storage_id_by_partition(asset_key, DagsterEventType.ASSET_MATERIALIZATION)
    )


def recorded_input_versions(
    instance: DagsterInstance,
    asset_key: AssetKey,
    partition_keys: Iterable[str] | None = None,
    recorded_keys: Mapping[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """partition key -> the ``input_versions`` its latest materialisation recorded ({} if none).

    ``recorded_keys`` ({name: metadata key}) reads plain metadata entries instead, for assets that
    record an input's identity under its own key (``context`` records ``encoder``)."""
    from dagster import AssetRecordsFilter

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


def _existing_source_shard_keys(instance: DagsterInstance) -> set[str]:
    sources = instance.get_dynamic_partitions(SOURCE)
    return {str(source_shard_key(s, shard)) for s in sources for shard in SHARDS}


# ---------------------------------------------------------------- the factory for targeted reruns


def targeted_rerun_sensor(
    name: str,
    asset_key: AssetKey,
    current_versions: CurrentVersions,
    job: JobDefinition | UnresolvedAssetJobDefinition = source_shard_job,
    rerun_keys: list[AssetKey] | None = None,
    minimum_interval_seconds: int = 60,
    description: str | None = None,
    recorded_keys: Mapping[str, str] | None = None,
) -> SensorDefinition:
    """A sensor that requests ``rerun_keys`` (default: ``asset_key`` and what depends on it in the job)
    for exactly the partitions of ``asset_key`` whose recorded input versions differ from
    ``current_versions(config, instance)``. One run per partition; the run key carries the new
    versions, so a tick that comes again before the rerun finished does not request it twice."""
    selection = rerun_keys if rerun_keys is not None else downstream_within(asset_key, SOURCE_SHARD_KEYS)

    @sensor(
        name=name,
        jobs=[job],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=_default_status(),
        description=description or f"Rerun the {asset_key.to_user_string()} partitions whose recorded input versions are out of date.",
    )
    def _targeted(context: SensorEvaluationContext):
        try:
            cfg = _fresh_config()
        except Exception as exc:
            return SkipReason(f"configuration unreadable: {exc}")
        current = dict(current_versions(cfg, context.instance))
        if not current:
            return SkipReason("no current input versions known yet")
        existing = _existing_source_shard_keys(context.instance)
        outdated = outdated_partitions(context.instance, asset_key, current, recorded_keys=recorded_keys)
        outdated = {pk: names for pk, names in outdated.items() if pk in existing}
        if not outdated:
            return SkipReason(f"every {asset_key.to_user_string()} partition is up to date with {sorted(current)}")
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


# ---------------------------------------------------------------- new sources, manifests, settings


@sensor(
    name="source_sync_sensor",
    jobs=[source_manifest_job],
    minimum_interval_seconds=30,
    default_status=_default_status(),
    description="New sources in the YAML become partitions and get their first run (corpora: knowledge_corpus_sensor).",
)
def source_sync_sensor(context: SensorEvaluationContext):
    try:
        cfg = _fresh_config()
    except Exception as exc:
        return SkipReason(f"configuration unreadable, no partitions added: {exc}")
    have_sources = set(context.instance.get_dynamic_partitions(SOURCE))
    new_sources = [s.name for s in cfg.sources if s.name not in have_sources]
    gone = sorted(have_sources - {s.name for s in cfg.sources})
    if gone:  # kept: their outputs stay; deleting a partition is an operator's decision
        context.log.info(f"sources no longer in the YAML (partitions kept): {gone}")
    if not new_sources:  # corpora are the knowledge_corpus_sensor's (it also rebuilds changed ones)
        return SkipReason("every source of the YAML is already a partition")
    requests = [source_partitions.build_add_request(new_sources)]
    runs = [
        RunRequest(run_key=f"first|{name}", job_name=source_manifest_job.name, partition_key=name,
                   tags={"medtrinity/source": name, "medtrinity/trigger": "new_source"})
        for name in new_sources
    ]
    return SensorResult(run_requests=runs, dynamic_partitions_requests=requests)


@sensor(
    name="manifest_followup_sensor",
    jobs=[source_shard_job],
    minimum_interval_seconds=30,
    default_status=_default_status(),
    description="Runs a source's source x shard partitions whose images are older than the source's latest manifest.",
)
def manifest_followup_sensor(context: SensorEvaluationContext):
    manifests = latest_storage_ids(context.instance, AssetKey("source_manifest"))
    if not manifests:
        return SkipReason("no source manifest materialised yet")
    images = latest_storage_ids(context.instance, AssetKey("images"))
    existing = set(context.instance.get_dynamic_partitions(SOURCE))
    requests = []
    for source, manifest_id in sorted(manifests.items()):
        if source not in existing:
            continue
        for shard in SHARDS:
            pk = source_shard_key(source, shard)
            if images.get(str(pk), -1) > manifest_id:
                continue
            requests.append(
                RunRequest(run_key=f"{source}|{shard}|m{manifest_id}", job_name=source_shard_job.name, partition_key=pk,
                           tags={"medtrinity/source": source, "medtrinity/trigger": "manifest"})
            )
    if not requests:
        return SkipReason("every source x shard partition is newer than its manifest")
    return SensorResult(run_requests=requests)


def generator_versions(cfg: PipelineConfig, instance: DagsterInstance) -> dict[str, str]:
    """The generator's identity as triplets record it: the ``generator`` settings (backend, model,
    version, seed, ...) and the prompt template's hash (``prompt:<name>``)."""
    versions = config_versions({"generator": cfg.section("generator")})
    try:
        from medtrinity_assets.generation.prompt import load_template

        template = load_template(str(cfg.section("generator").get("prompt", "description_v1")))
        versions[f"prompt:{template.name}"] = template.sha256[:16]
    except Exception as exc:  # a missing template fails the triplets run itself, with its own message
        log.warning("generator_change_sensor: prompt template not readable (%s); comparing settings only", exc)
    return versions


def encoder_versions(cfg: PipelineConfig, instance: DagsterInstance) -> dict[str, str]:
    """The encoder in use, as Dagster last observed it: the data version of ``knowledge_encoder``
    (an observable source asset whose version is the encoder's name@digest). {} before any observation."""
    record = instance.get_latest_data_version_record(AssetKey("knowledge_encoder"))
    if record is None:
        return {}
    from dagster._core.definitions.data_version import extract_data_version_from_entry

    version = extract_data_version_from_entry(record.event_log_entry)
    return {"encoder": version.value} if version is not None else {}


def _sensors() -> list[SensorDefinition]:
    if not JOBS:
        log.warning("sensors: the per-source jobs are empty (ingest stage missing); no sensors")
        return []
    out = [source_sync_sensor, manifest_followup_sensor]
    names = {k.to_user_string() for k in SOURCE_SHARD_KEYS}
    if "triplets" in names:
        out.append(targeted_rerun_sensor("generator_change_sensor", AssetKey("triplets"), generator_versions,
                                         description="Rerun triplets whose recorded generator settings differ from the YAML's."))
    if "context" in names:
        out.append(targeted_rerun_sensor("encoder_change_sensor", AssetKey("context"), encoder_versions,
                                         recorded_keys={"encoder": "encoder"},
                                         description="Rerun context (and triplets) retrieved with another encoder than the one observed now."))
    return out


SENSORS = _sensors()
