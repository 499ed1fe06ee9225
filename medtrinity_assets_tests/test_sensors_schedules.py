"""Schedules and sensors on a persistent temp instance: per-source schedules, source sync, manifest
followup, and targeted reruns that touch exactly the partitions whose recorded inputs changed."""


import datetime as dt

import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    Definitions,
    MaterializeResult,
    asset,
    build_schedule_context,
    build_sensor_context,
    define_asset_job,
    materialize,
)

from medtrinity_assets import input_versions as iv
from medtrinity_assets.config import DEFAULT_SCHEDULE, load_config
from medtrinity_assets.partitions import SHARDS, source_shard_key, source_shard_partitions, split_key
from medtrinity_assets_tests.support.ops import write_tiny_sources


@pytest.fixture
def instance():
    with DagsterInstance.local_temp() as inst:
        yield inst


@pytest.fixture
def tiny_config(tmp_path, monkeypatch):
    path = write_tiny_sources(tmp_path, n_sources=2)
    monkeypatch.setenv("MEDTRINITY_CONFIG", str(path))
    return path


def evaluate(sensor_def, instance, definitions, resources=None):
    """One tick as the daemon runs it: partition keys are checked against the instance's dynamic
    partitions plus the ones the tick itself adds (that needs the instance ref)."""
    with build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=definitions,
                              resources=resources) as ctx:  # resources with a teardown need the context manager
        return sensor_def.evaluate_tick(ctx)


def _defs():
    from medtrinity_assets.definitions import defs

    return defs


# ------------------------------------------------------------------------------------- pure parts


def test_outdated_names_only_counts_inputs_the_partition_used():
    current = {"model:lesion": "2", "model:anatomy": "1", "config:generator": "g1"}
    assert iv.outdated_names({"model:lesion": "1"}, current) == ["model:lesion"]
    assert iv.outdated_names({"model:anatomy": "1"}, current) == []
    assert iv.outdated_names({}, current) == []
    # a model that disappeared from the registry makes its users outdated ...
    assert iv.outdated_names({"model:retired": "1"}, current) == ["model:retired"]
    # ... but a namespace the caller does not track is left alone
    assert iv.outdated_names({"encoder:x": "1"}, current) == []
    assert iv.fingerprint({"a": 1, "b": [2]}) == iv.fingerprint({"b": [2], "a": 1})
    assert iv.parse_recorded('{"model:x": 3}') == {"model:x": "3"}


# ------------------------------------------------------------------------------------- schedules


def test_one_schedule_per_source_with_its_cron(tmp_path):
    from medtrinity_assets.schedules import build_source_schedules

    path = write_tiny_sources(tmp_path, n_sources=3, extra_sources=[
        {"name": "weekly_one", "format": "image_folder", "path": "inputs/tiny_0", "roi": "none"}])
    schedules = {s.name: s for s in build_source_schedules(load_config(path))}
    assert sorted(schedules) == ["tiny_0_schedule", "tiny_1_schedule", "tiny_2_schedule", "weekly_one_schedule"]
    assert schedules["tiny_1_schedule"].cron_schedule == "1 2 * * *"
    assert schedules["weekly_one_schedule"].cron_schedule == DEFAULT_SCHEDULE
    assert build_source_schedules(None) == []


def test_schedule_requests_only_its_sources_partitions(tmp_path, instance):
    from medtrinity_assets.schedules import build_source_schedules

    path = write_tiny_sources(tmp_path, n_sources=3)
    from medtrinity_assets import definitions

    schedules = build_source_schedules(load_config(path))
    repo = Definitions.merge(definitions.defs, Definitions(schedules=schedules)).get_repository_def()
    sched = {s.name: s for s in schedules}["tiny_1_schedule"]
    when = dt.datetime(2026, 11, 30, 2, 1, tzinfo=dt.UTC)

    def tick():
        return sched.evaluate_tick(build_schedule_context(instance=instance, scheduled_execution_time=when,
                                                          repository_def=repo))

    skipped = tick()
    assert not skipped.run_requests and "not a partition yet" in (skipped.skip_message or "")

    instance.add_dynamic_partitions("source", ["tiny_0", "tiny_1", "tiny_2"])
    result = tick()
    keys = [r.partition_key for r in result.run_requests]
    assert keys == [str(source_shard_key("tiny_1", s)) for s in SHARDS]
    assert {split_key(k)[0] for k in keys} == {"tiny_1"}
    assert len({r.run_key for r in result.run_requests}) == len(SHARDS)


def test_definitions_without_a_config_have_no_schedules(monkeypatch, tmp_path, caplog):
    import importlib

    import medtrinity_assets.schedules as schedules

    monkeypatch.setenv("MEDTRINITY_CONFIG", str(tmp_path / "missing.yaml"))
    try:
        reloaded = importlib.reload(schedules)
        assert reloaded.SCHEDULES == []
        assert any("could not be read" in r.getMessage() for r in caplog.records)
    finally:
        monkeypatch.undo()
        importlib.reload(schedules)


# ------------------------------------------------------------------------------------- source sync


def test_new_yaml_entry_becomes_a_partition_and_gets_its_first_run(tmp_path, instance, monkeypatch):
    from medtrinity_assets.assets.ingest import source_sync_sensor

    path = write_tiny_sources(tmp_path, n_sources=2)
    monkeypatch.setenv("MEDTRINITY_CONFIG", str(path))
    defs = _defs()

    def tick():
        result = evaluate(source_sync_sensor, instance, defs)
        for req in result.dynamic_partitions_requests or []:  # what the daemon does with them
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        return result

    first = tick()
    assert sorted(instance.get_dynamic_partitions("source")) == ["tiny_0", "tiny_1"]
    assert sorted(r.partition_key for r in first.run_requests) == ["tiny_0", "tiny_1"]
    assert {r.job_name for r in first.run_requests} == {"source_manifest_job"}

    again = tick()
    assert not again.run_requests and "already a partition" in (again.skip_message or "")

    # the user adds a source to the YAML: exactly that one is added and run
    write_tiny_sources(tmp_path / "more", n_sources=3)
    text = path.read_text() + (
        "- name: added_later\n  format: image_folder\n  path: more/inputs/tiny_2\n  roi: none\n"
    )
    path.write_text(text)
    third = tick()
    assert sorted(instance.get_dynamic_partitions("source")) == ["added_later", "tiny_0", "tiny_1"]
    assert [r.partition_key for r in third.run_requests] == ["added_later"]


def test_manifest_followup_requests_the_shards_older_than_the_manifest(tiny_config, instance):
    from medtrinity_assets.assets.ingest import manifest_followup_sensor

    defs = _defs()
    instance.add_dynamic_partitions("source", ["tiny_0", "tiny_1"])
    instance.report_runless_asset_event(AssetMaterialization("source_manifest", partition="tiny_0"))

    def keys():
        res = evaluate(manifest_followup_sensor, instance, defs)
        return sorted(str(r.partition_key) for r in res.run_requests)

    assert keys() == sorted(str(source_shard_key("tiny_0", s)) for s in SHARDS)
    instance.report_runless_asset_event(AssetMaterialization("images", partition=str(source_shard_key("tiny_0", SHARDS[0]))))
    assert keys() == sorted(str(source_shard_key("tiny_0", s)) for s in SHARDS[1:])


# ------------------------------------------------------------------------------------- targeted reruns

# A three-stage source x shard graph whose middle stage records the models it used, like rois does.
MODEL_OF_SOURCE = {"gt_src": None, "lung_src": "lesion_unet", "brain_src": "brain_seg"}
REGISTRY = {"lesion_unet": "1@aaaa", "brain_seg": "1@bbbb"}
RUNS: list[tuple[str, str]] = []


@asset(partitions_def=source_shard_partitions)
def toy_images(context: AssetExecutionContext) -> MaterializeResult:
    RUNS.append(("toy_images", context.partition_key))
    return MaterializeResult(metadata={"n": 1})


@asset(partitions_def=source_shard_partitions, deps=[toy_images])
def toy_rois(context: AssetExecutionContext) -> MaterializeResult:
    RUNS.append(("toy_rois", context.partition_key))
    source, _ = split_key(context.partition_key)
    model = MODEL_OF_SOURCE[source]
    used = {f"model:{model}": REGISTRY[model]} if model else {}
    return MaterializeResult(metadata={iv.INPUT_VERSIONS_KEY: used})


@asset(partitions_def=source_shard_partitions, deps=[toy_rois])
def toy_triplets(context: AssetExecutionContext) -> MaterializeResult:
    RUNS.append(("toy_triplets", context.partition_key))
    return MaterializeResult(metadata={"n": 1})


@pytest.mark.slow
def test_model_update_reruns_exactly_the_partitions_that_used_it(tiny_config, instance):
    from medtrinity_assets.sensors import targeted_rerun_sensor

    toy_job = define_asset_job("toy_job", selection=[toy_images, toy_rois, toy_triplets], partitions_def=source_shard_partitions)
    sensor = targeted_rerun_sensor(
        "toy_model_update_sensor", AssetKey("toy_rois"),
        lambda cfg, inst: {f"model:{k}": v for k, v in REGISTRY.items()},
        job=toy_job, rerun_keys=[AssetKey("toy_rois"), AssetKey("toy_triplets")],
    )
    defs = Definitions(assets=[toy_images, toy_rois, toy_triplets], jobs=[toy_job], sensors=[sensor])
    assets = [toy_images, toy_rois, toy_triplets]

    instance.add_dynamic_partitions("source", list(MODEL_OF_SOURCE))
    all_keys = [source_shard_key(s, shard) for s in MODEL_OF_SOURCE for shard in SHARDS]
    for pk in all_keys:
        assert materialize(assets, partition_key=pk, instance=instance).success

    def tick():
        return evaluate(sensor, instance, defs)

    assert not tick().run_requests  # everything current

    REGISTRY["lesion_unet"] = "2@cccc"  # retrained: only lung_src used it
    try:
        result = tick()
        requested = sorted(str(r.partition_key) for r in result.run_requests)
        assert requested == sorted(str(source_shard_key("lung_src", s)) for s in SHARDS)
        assert all(r.asset_selection == [AssetKey("toy_rois"), AssetKey("toy_triplets")] for r in result.run_requests)
        assert all(r.job_name == "toy_job" for r in result.run_requests)
        assert len({r.run_key for r in result.run_requests}) == len(requested)

        # run what was requested; then nothing is outdated any more
        RUNS.clear()
        for r in result.run_requests:
            assert materialize(assets, selection=r.asset_selection, partition_key=r.partition_key, instance=instance).success
        assert sorted({pk for name, pk in RUNS if name == "toy_rois"}) == requested
        assert not any(name == "toy_images" for name, _ in RUNS)
        assert not tick().run_requests
    finally:
        REGISTRY["lesion_unet"] = "1@aaaa"


def test_generator_change_targets_partitions_built_with_other_settings(tiny_config, instance):
    """The generator/encoder path: partitions recorded with an older settings fingerprint are rerun."""
    from medtrinity_assets.assets.triplets import generator_versions
    from medtrinity_assets.sensors import targeted_rerun_sensor

    cfg = load_config(tiny_config)
    current = generator_versions(cfg, instance)
    old = {"config:generator": iv.fingerprint({"backend": "grounded", "model": "older"})}
    instance.add_dynamic_partitions("source", ["tiny_0", "tiny_1"])
    for source, recorded in (("tiny_0", current), ("tiny_1", old)):
        for shard in SHARDS:
            instance.report_runless_asset_event(AssetMaterialization(
                "toy_triplets", partition=str(source_shard_key(source, shard)), metadata={iv.INPUT_VERSIONS_KEY: recorded}))
    toy_job = define_asset_job("toy_job2", selection=[toy_triplets], partitions_def=source_shard_partitions)
    sensor = targeted_rerun_sensor("toy_generator_sensor", AssetKey("toy_triplets"), generator_versions,
                                   job=toy_job, rerun_keys=[AssetKey("toy_triplets")])
    defs = Definitions(assets=[toy_images, toy_rois, toy_triplets], jobs=[toy_job], sensors=[sensor])
    result = evaluate(sensor, instance, defs)
    assert sorted(str(r.partition_key) for r in result.run_requests) == sorted(
        str(source_shard_key("tiny_1", s)) for s in SHARDS)


def test_encoder_change_targets_context_retrieved_with_another_encoder(tiny_config, instance):
    """The encoder path: context records its encoder; the current one is knowledge_encoder's observed version."""
    from dagster import AssetObservation

    from medtrinity_assets.assets.knowledge import encoder_versions
    from medtrinity_assets.sensors import targeted_rerun_sensor

    assert encoder_versions(load_config(tiny_config), instance) == {}  # nothing observed yet: no opinion
    instance.report_runless_asset_event(AssetObservation("knowledge_encoder", tags={"dagster/data_version": "minilm@new"}))
    assert encoder_versions(load_config(tiny_config), instance) == {"encoder": "minilm@new"}
    instance.add_dynamic_partitions("source", ["tiny_0", "tiny_1"])
    for source, enc in (("tiny_0", "minilm@new"), ("tiny_1", "minilm@old")):
        for shard in SHARDS:
            instance.report_runless_asset_event(AssetMaterialization(
                "toy_triplets", partition=str(source_shard_key(source, shard)), metadata={"encoder": enc}))
    toy_job = define_asset_job("toy_job3", selection=[toy_triplets], partitions_def=source_shard_partitions)
    sensor = targeted_rerun_sensor("toy_encoder_sensor", AssetKey("toy_triplets"), encoder_versions, job=toy_job,
                                   rerun_keys=[AssetKey("toy_triplets")], recorded_keys={"encoder": "encoder"})
    defs = Definitions(assets=[toy_images, toy_rois, toy_triplets], jobs=[toy_job], sensors=[sensor])
    result = evaluate(sensor, instance, defs)
    assert sorted(str(r.partition_key) for r in result.run_requests) == sorted(
        str(source_shard_key("tiny_1", s)) for s in SHARDS)


def test_every_sensor_and_schedule_of_the_code_location_evaluates(tiny_config, instance):
    """On a fresh instance: no sensor or schedule of the real definitions raises (they skip or request)."""
    import importlib

    import medtrinity_assets.schedules as schedules
    from medtrinity_assets.resources import default_resources

    defs = _defs()
    for sensor_def in defs.sensors or []:
        result = evaluate(sensor_def, instance, defs, resources=default_resources())
        assert result.run_requests is not None or result.skip_message, sensor_def.name
    repo = defs.get_repository_def()
    for sched in importlib.reload(schedules).SCHEDULES:
        tick = sched.evaluate_tick(build_schedule_context(instance=instance, repository_def=repo))
        assert "not a partition yet" in (tick.skip_message or "")
