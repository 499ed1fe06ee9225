"""The Dagster layer of the exports: a blocking check on a broken triplet shard stops the export of that
shard (across runs, on a temp instance), and so does a shard whose checks never ran; a good shard exports
its part, passes its integrity and PHI checks, and a tampered file fails them; the exports and the card read
the near-duplicate tables (never recompute them); dataset_exports merges the parts per split and passes its
check; the dataset card renders with its plots, in card/ and as the Hub card of exports/hf/."""

from pathlib import Path

import pytest
from dagster import DagsterInstance, MaterializeResult, asset, materialize

from medtrinity_assets.assets.exports import (
    dataset_card,
    dataset_exports,
    export_coco,
    export_hf,
    export_vqa,
    recorded_contradiction_by_source,
)
from medtrinity_assets.assets.quality import near_duplicates
from medtrinity_assets.assets.triplets import TRIPLET_CHECK_SPECS, triplet_checks
from medtrinity_assets.export.build import part_dir
from medtrinity_assets.partitions import source_shard_key, source_shard_partitions
from medtrinity_assets.resources import PipelineResource
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.quality import GOOD_DESCRIPTION, sample_set, triplet_row, write_config, write_partition

SOURCES = ["src_a", "src_b"]


def _stub_triplets(layout: DataLayout, corrupt: set[str], with_checks: bool = True):
    """Stands in for the generation stage: writes the partition's tables, corrupting some sources, and
    reports the real triplet checks with the materialisation (or none, ``with_checks=False``)."""

    @asset(name="triplets", partitions_def=source_shard_partitions, check_specs=TRIPLET_CHECK_SPECS if with_checks else None)
    def triplets(context) -> MaterializeResult:
        source = context.partition_key.keys_by_dimension["source"]
        shard = context.partition_key.keys_by_dimension["shard"]
        images, rois, trips = sample_set(layout, source, shard, n=4, seed0=0 if source == "src_a" else 20)
        if source in corrupt:  # wrong side and wrong modality in half of the descriptions
            for i in (0, 1):
                bad = GOOD_DESCRIPTION.replace("left", "right").replace("CT", "MRI")
                trips[i] = triplet_row(images[i], [rois[i]], description=bad)
        write_partition(layout, source, shard, images, rois, trips)
        if not with_checks:
            return MaterializeResult(metadata={"rows": len(trips)})
        path = layout.table_path("triplets", {"source": source, "shard": shard})
        from medtrinity_assets.storage import read_table

        return MaterializeResult(metadata={"rows": len(trips)},
                                 check_results=triplet_checks(path, read_table(path), rois, len(images), 0.1))

    return triplets


@pytest.fixture()
def env(tmp_path: Path):
    cfg_path = write_config(tmp_path, SOURCES, extra="quality:\n  max_contradiction_rate: 0.1\n")
    (tmp_path / "dagster_home").mkdir()
    instance = DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster_home"))
    instance.add_dynamic_partitions("source", SOURCES)
    resources = {"pipeline": PipelineResource(config_path=str(cfg_path))}
    yield instance, resources, DataLayout(tmp_path / "out")
    instance.dispose()


def _materialize_triplets(layout, instance, resources, corrupt: set[str]):
    stub = _stub_triplets(layout, corrupt)
    results = {}
    for source in SOURCES:
        res = materialize([stub],
                          partition_key=source_shard_key(source, "s00"), instance=instance, resources=resources,
                          raise_on_error=False)
        results[source] = {e.check_name: e.passed for e in res.get_asset_check_evaluations()}
    return results


@pytest.mark.slow
def test_blocking_check_stops_the_export_of_a_broken_shard(env):
    instance, resources, layout = env
    checks_run = _materialize_triplets(layout, instance, resources, corrupt={"src_b"})
    assert checks_run["src_a"] == {"triplets_schema": True, "triplets_non_empty": True, "triplets_consistency": True}
    assert checks_run["src_b"]["triplets_consistency"] is False
    assert materialize([near_duplicates], instance=instance, resources=resources).success
    res = materialize([export_hf], partition_key="s00", instance=instance, resources=resources, raise_on_error=False)
    assert not res.success
    failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert "failed triplets_consistency on s00|src_b" in message and "src_a" not in message
    assert not part_dir(layout, "hf", "s00").exists()

    # regenerate the broken shard: the check passes and the export goes through
    checks_run = _materialize_triplets(layout, instance, resources, corrupt=set())
    assert all(checks_run["src_b"].values())
    res = materialize([export_hf], partition_key="s00",
                      instance=instance, resources=resources)
    assert res.success
    evals = {e.check_name: e for e in res.get_asset_check_evaluations()}
    assert evals["export_hf_integrity"].passed and evals["export_hf_integrity"].metadata["samples_read_back"].value == 8
    assert evals["export_hf_phi"].passed
    meta = res.asset_materializations_for_node("export_hf")[0].metadata
    assert meta["samples"].value == 8

    # triplets rematerialised without their checks: the passed evaluation no longer covers them
    assert materialize([_stub_triplets(layout, set(), with_checks=False)], partition_key=source_shard_key("src_a", "s00"),
                       instance=instance, resources=resources).success
    res = materialize([export_hf], partition_key="s00", instance=instance, resources=resources, raise_on_error=False)
    assert not res.success
    message = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error.message
    assert "outdated triplets_consistency on s00|src_a" in message and "src_b" not in message

    # tampering with a sealed file is what the integrity check recomputes (domain test: test_quality_gates)
    from medtrinity_assets.export.sha256sums import verify_sha256sums

    victim = next(part_dir(layout, "hf", "s00").glob("*.parquet"))
    victim.write_bytes(victim.read_bytes() + b"x")
    assert verify_sha256sums(part_dir(layout, "hf", "s00")).mismatched == [victim.name]


def test_a_shard_whose_checks_never_ran_is_not_exported(env):
    instance, resources, layout = env
    images, rois, trips = sample_set(layout, "src_a", "s00", n=4)
    trips = [triplet_row(i, [r], description=GOOD_DESCRIPTION.replace("left", "right")) for i, r in zip(images, rois)]
    write_partition(layout, "src_a", "s00", images, rois, trips)
    res = materialize([export_coco], partition_key="s00", instance=instance, resources=resources, raise_on_error=False)
    assert not res.success
    message = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error.message
    assert "never ran triplets_consistency on s00|src_a" in message and "never ran triplets_schema on s00|src_a" in message
    assert not part_dir(layout, "coco", "s00").exists()


@pytest.mark.slow
def test_dataset_card_renders_with_plots(env, monkeypatch):
    instance, resources, layout = env
    _materialize_triplets(layout, instance, resources, corrupt={"src_b"})
    rates = recorded_contradiction_by_source(instance, layout, SOURCES, ["s00", "s01"])
    assert rates["src_a"] == 0.0 and rates["src_b"] > 0.1  # what the blocking check recorded for each partition
    _materialize_triplets(layout, instance, resources, corrupt=set())  # regenerated: the latest evaluation counts
    dups = materialize([near_duplicates], instance=instance, resources=resources)
    assert dups.success
    dup_meta = dups.asset_materializations_for_node("near_duplicates")[0].metadata
    assert dup_meta["duplicate_groups"].value == 0 and dup_meta["images"].value == 8
    assert {e.check_name: e.passed for e in dups.get_asset_check_evaluations()} == {"no_near_duplicates": True,
                                                                                    "no_eval_leaks": True}
    assert (layout.root / "tables" / "near_duplicates" / "all.parquet").is_file()

    # the exports and the card read the tables near_duplicates wrote; they never recompute them
    def recomputed(*args, **kwargs):
        raise AssertionError("dataset-wide dedup recomputed outside the near_duplicates asset")

    monkeypatch.setattr("medtrinity_assets.quality.near_duplicates.find_duplicates", recomputed)
    monkeypatch.setattr("medtrinity_assets.quality.near_duplicates.find_leaks", recomputed)
    # ... nor the contradiction score: the card reports what triplets_consistency recorded
    monkeypatch.setattr("medtrinity_assets.quality.consistency.score_rows", recomputed)
    for a in (export_hf, export_vqa):
        assert materialize([a], partition_key="s00", instance=instance, resources=resources).success
    res = materialize([dataset_exports, dataset_card],
                      instance=instance, resources=resources)
    assert res.success
    merged = res.asset_materializations_for_node("dataset_exports")[0].metadata
    assert sum(merged["hf/samples"].value.values()) == 8 and merged["hf/missing_shards"].value == ["s01", "s02", "s03"]
    assert merged["vqa/images_linked"].value == 8 and merged["vqa/images_copied"].value == 0
    card = (layout.card / "README.md").read_text()
    assert card == (layout.exports / "hf" / "README.md").read_text() and card.startswith("---\n")
    assert "| src_a | image_folder | CC0-1.0 |" in card and "## Quality checks" in card and "## Conventions" in card
    for plot in ("by_modality", "by_organ", "by_disease", "roi_size", "description_length", "contradiction_rate",
                 "vqa_question_types"):
        assert (layout.card / "plots" / f"{plot}.png").stat().st_size > 1000
        assert (layout.exports / "hf" / "plots" / f"{plot}.png").is_file() and f"(plots/{plot}.png)" in card
    meta = res.asset_materializations_for_node("dataset_card")[0].metadata
    assert "data:image/png;base64" in meta["card"].value and not meta["card"].value.startswith("---")
    assert meta["samples"].value == 8
    assert meta["contradiction_rate_by_source"].value == {"src_a": 0.0, "src_b": 0.0}
    assert "| src_b | 0.00% |" in card
    assert all(e.passed for e in res.get_asset_check_evaluations())
    assert (layout.exports / "hf" / "SHA256SUMS").is_file()
