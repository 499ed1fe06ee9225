"""The catalog never shows a row whose upstream row is gone, and its errors are one line.

The scenario of a killed run: a source is rescanned (its manifest loses an item) and re-ingested
(its images lose that item's slices), then the run is killed before ``rois``/``context``/``triplets``
reran. Their Parquet files still hold the vanished samples; the catalog must not show them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medtrinity_assets.catalog import CatalogError, query, refresh_catalog
from medtrinity_assets.storage import DataLayout, rows_to_table, write_table
from medtrinity_assets.tables import IMAGE_SCHEMA, MANIFEST_SCHEMA, QUARANTINE_SCHEMA, ROI_SCHEMA, TRIPLET_SCHEMA

# item -> its slices (samples); every table below starts consistent
ITEMS = {"vol_a": ["a0", "a1"], "vol_b": ["b0", "b1", "b2"], "photo_c": ["c0"]}


def _write(layout: DataLayout, items: dict[str, list[str]], tables: tuple[str, ...]) -> None:
    part = {"source": "ct", "shard": "s00"}
    samples = [s for ss in items.values() for s in ss]
    if "manifest" in tables:
        write_table(layout.table_path("manifest", {"source": "ct"}),
                    rows_to_table([{"source": "ct", "item_key": k, "shard": "s00"} for k in items], MANIFEST_SCHEMA))
    if "images" in tables:
        write_table(layout.table_path("images", part), rows_to_table(
            [{"sample_id": s, "source": "ct", "item_key": k, "shard": "s00"} for k, ss in items.items() for s in ss],
            IMAGE_SCHEMA))
    if "rois" in tables:
        write_table(layout.table_path("rois", part),
                    rows_to_table([{"sample_id": s, "roi_id": f"{s}-r"} for s in samples], ROI_SCHEMA))
    if "triplets" in tables:
        write_table(layout.table_path("triplets", part), rows_to_table(
            [{"sample_id": s, "source": "ct", "status": "ok", "description": f"about {s}"} for s in samples],
            TRIPLET_SCHEMA))
    if "quarantine" in tables:
        write_table(layout.table_path("quarantine", {"source": "ct", "stage": "scan"}), rows_to_table(
            [{"source": "ct", "rel_path": "broken.nii", "stage": "scan", "reason": "r", "error_class": "truncated"}],
            QUARANTINE_SCHEMA))


def _samples(layout: DataLayout, table: str) -> list[str]:
    return sorted(r["sample_id"] for r in query(layout, f"select sample_id from {table}").to_pylist())


def test_rows_whose_upstream_rows_are_gone_are_not_shown(tmp_path: Path):
    layout = DataLayout(tmp_path)
    _write(layout, ITEMS, ("manifest", "images", "rois", "triplets", "quarantine"))
    refresh_catalog(layout)
    everything = sorted(s for ss in ITEMS.values() for s in ss)
    assert _samples(layout, "images") == _samples(layout, "triplets") == _samples(layout, "rois") == everything

    # rescanned: vol_b is gone from the folder; the run is killed before anything else reran
    rescanned = {k: v for k, v in ITEMS.items() if k != "vol_b"}
    _write(layout, rescanned, ("manifest",))
    refresh_catalog(layout)
    assert _samples(layout, "images") == ["a0", "a1", "c0"]
    assert _samples(layout, "triplets") == _samples(layout, "rois") == ["a0", "a1", "c0"]

    # re-ingested, with a1 no longer produced (e.g. now quarantined); killed before rois and triplets
    _write(layout, {"vol_a": ["a0"], "photo_c": ["c0"]}, ("images",))
    refresh_catalog(layout)
    assert _samples(layout, "triplets") == _samples(layout, "rois") == ["a0", "c0"]
    # the files still hold the old rows: only the views hide them
    raw = query(layout, f"select count(*) as n from read_parquet('{layout.table_glob('triplets')}')").to_pylist()
    assert raw == [{"n": 6}]
    # quarantine rows are a record of what was refused: never filtered
    assert query(layout, "select count(*) as n from quarantine").to_pylist() == [{"n": 1}]
    # the rerun brings everything back in line
    _write(layout, {"vol_a": ["a0"], "photo_c": ["c0"]}, ("rois", "triplets"))
    refresh_catalog(layout)
    assert _samples(layout, "triplets") == ["a0", "c0"]


def test_tables_without_upstream_keys_are_shown_as_written(tmp_path: Path):
    layout = DataLayout(tmp_path)
    write_table(layout.table_path("passages", "core"), rows_to_table([{"passage_id": "p1"}],
                                                                    _schema("passage_id")))
    refresh_catalog(layout)
    assert query(layout, "select passage_id from passages").to_pylist() == [{"passage_id": "p1"}]
    assert query(layout, "select count(*) as n from images").to_pylist() == [{"n": 0}]  # empty base view


def _schema(*names: str):
    import pyarrow as pa

    return pa.schema([(n, pa.string()) for n in names])


@pytest.mark.parametrize("sql, words", [
    ("select * from triplet", ["query failed", "triplet", "views:", "images"]),
    ("selec 1", ["query failed", "syntax error"]),
    ("drop view images", ["query failed", "read-only"]),
    ("select nosuch from images", ["query failed", "nosuch"]),
])
def test_query_errors_are_one_line(tmp_path: Path, sql: str, words: list[str]):
    layout = DataLayout(tmp_path)
    _write(layout, ITEMS, ("manifest", "images"))
    refresh_catalog(layout)
    with pytest.raises(CatalogError) as err:
        query(layout, sql)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)
