"""A code location with only the ingest stage and the per-source jobs, for the service tests.

The Postgres and Dask tests exercise the instance and the executors with the real ingest assets; they
load this location (not ``medtrinity_assets.definitions``) so that a stage being edited elsewhere
cannot break them. The web UI test loads the full definitions.
"""

from dagster import Definitions, define_asset_job

from medtrinity_assets.assets.ingest import images, source_manifest
from medtrinity_assets.executors import executor_from_env
from medtrinity_assets.partitions import source_partitions, source_shard_partitions
from medtrinity_assets.resources import PipelineResource
from medtrinity_assets.settings import active_config_path

source_manifest_job = define_asset_job("source_manifest_job", selection=[source_manifest],
                                       partitions_def=source_partitions, executor_def=executor_from_env())
source_shard_job = define_asset_job("source_shard_job", selection=[images],
                                    partitions_def=source_shard_partitions, executor_def=executor_from_env())

defs = Definitions(
    assets=[source_manifest, images],
    jobs=[source_manifest_job, source_shard_job],
    resources={"pipeline": PipelineResource(config_path=str(active_config_path()))},
)


def shard_job_def():
    """The resolved source_shard_job (a reconstructable target for executors that run steps elsewhere)."""
    return defs.resolve_job_def("source_shard_job")


def scan_job_def():
    return defs.resolve_job_def("source_manifest_job")


def build_shard_job():
    """source_shard_job on the executor the environment names *now* (the Dask test switches it)."""
    job = define_asset_job("source_shard_job", selection=[images], partitions_def=source_shard_partitions,
                           executor_def=executor_from_env())
    return Definitions(assets=[source_manifest, images], jobs=[job],
                       resources={"pipeline": PipelineResource(config_path=str(active_config_path()))}).resolve_job_def("source_shard_job")


def build_shard_job_for_executor_test():
    """The same job under a second name: Dagster caches a reconstructable job per target, so the Dask
    pass needs its own target to pick up the executor switched on in the environment."""
    return build_shard_job()
