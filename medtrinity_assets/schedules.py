"""One schedule per source, built from the sources YAML (``schedule:`` cron per entry, default weekly).

Each tick requests runs for that source's partitions only: one ``source_shard_job`` run per
source x shard key, with a run key per tick so a retried tick never doubles a run. Dynamic
partitions rule out ``build_schedule_from_partitioned_job``, hence the own schedule body. A source
that is not a registered partition yet is skipped with a reason (the source-sync sensor adds it).

Rescanning the source folder first is optional per tick (``options: {rescan_on_schedule: true}``): the
tick then requests the ``source_manifest_job`` run instead, and the manifest-followup sensor
requests the shard runs once the new manifest exists, so no shard reads a half-written manifest.
"""

from __future__ import annotations

import logging

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from medtrinity_assets.config import PipelineConfig, SourceSpec
from medtrinity_assets.jobs import source_manifest_job, source_shard_job
from medtrinity_assets.partitions import SHARDS, SOURCE, source_shard_key

log = logging.getLogger(__name__)


def schedule_name(source: str) -> str:
    return f"{source}_schedule"


def source_run_requests(source: str, stamp: str, shards: list[str] | None = None) -> list[RunRequest]:
    """One source_shard_job run per shard of ``source``; ``stamp`` makes the run keys unique per tick."""
    return [
        RunRequest(
            run_key=f"{source}|{shard}|{stamp}",
            partition_key=source_shard_key(source, shard),
            tags={"medtrinity/source": source, "medtrinity/shard": shard, "medtrinity/trigger": "schedule"},
        )
        for shard in (shards or SHARDS)
    ]


def build_source_schedule(spec: SourceSpec) -> ScheduleDefinition:
    """The schedule of one source: its cron, its partitions, nothing else."""
    rescan = spec.options.rescan_on_schedule

    @schedule(
        name=schedule_name(spec.name),
        cron_schedule=spec.schedule,
        job=source_manifest_job if rescan else source_shard_job,
        default_status=DefaultScheduleStatus.STOPPED,
        description=f"Refresh source '{spec.name}' ({spec.format}) on '{spec.schedule}': its partitions only.",
        tags={"medtrinity/source": spec.name},
    )
    def _source_schedule(context: ScheduleEvaluationContext):
        if spec.name not in set(context.instance.get_dynamic_partitions(SOURCE)):
            return SkipReason(f"source '{spec.name}' is not a partition yet; the source_sync_sensor adds it")
        stamp = context.scheduled_execution_time.strftime("%Y%m%dT%H%M") if context.scheduled_execution_time else "manual"
        if rescan:
            return [RunRequest(run_key=f"{spec.name}|scan|{stamp}", partition_key=spec.name,
                               tags={"medtrinity/source": spec.name, "medtrinity/trigger": "schedule"})]
        return source_run_requests(spec.name, stamp)

    return _source_schedule


def build_source_schedules(cfg: PipelineConfig | None) -> list[ScheduleDefinition]:
    """Schedules for every source of ``cfg``; none when there is no config."""
    if cfg is None:
        return []
    return [build_source_schedule(s) for s in cfg.sources]


def _active_config_or_none() -> PipelineConfig | None:
    from medtrinity_assets.settings import active_config, active_config_path

    try:
        return active_config()
    except Exception as exc:  # missing or broken YAML: the UI still loads, without schedules
        log.warning("schedules: no per-source schedules, the configuration %s could not be read: %s",
                    active_config_path(), exc)
        return None


SCHEDULES = build_source_schedules(_active_config_or_none())
