"""Building blocks the stage modules use for their asset checks on one partition's Parquet table.

The logic of each check lives in ``quality/``; these helpers read the partition's rows, call it and
turn the outcome into an ``AssetCheckResult`` with its numbers as metadata.
"""

from __future__ import annotations

from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, TableColumn, TableSchema

from medtrinity_assets.partitions import split_key
from medtrinity_assets.resources import PipelineResource


def schema_metadata(table) -> TableSchema:
    """A Parquet table's columns as Dagster's ``dagster/column_schema`` metadata."""
    return TableSchema(columns=[TableColumn(f.name, str(f.type)) for f in table.schema])


def partition_rows(pipeline: PipelineResource, table: str, partition_key, columns=None) -> list[dict[str, Any]]:
    """Rows of ``table`` for a source x shard partition ([] when it was not materialised)."""
    from medtrinity_assets.export.shard_inputs import read_rows

    source, shard = split_key(partition_key)
    return read_rows(pipeline.layout().table_path(table, {"source": source, "shard": shard}), columns)


def schema_result(pipeline: PipelineResource, table: str, partition_key, schema, required=None) -> AssetCheckResult:
    """Blocking result: the partition's file has every column of ``schema`` with the right types."""
    from medtrinity_assets.quality.table_checks import check_schema

    source, shard = split_key(partition_key)
    rep = check_schema(pipeline.layout().table_path(table, {"source": source, "shard": shard}), schema, required)
    return AssetCheckResult(
        passed=rep.ok,
        severity=AssetCheckSeverity.ERROR,
        metadata={"rows": rep.rows, "file_exists": rep.exists, "missing_columns": MetadataValue.json(rep.missing_columns),
                  "wrong_types": MetadataValue.json(rep.wrong_types)},
        description=None if rep.ok else f"{table} partition {partition_key} does not match its schema; rematerialise it",
    )


def non_empty_result(pipeline: PipelineResource, table: str, partition_key, expected: bool = True) -> AssetCheckResult:
    """Warning result: the partition holds rows (when rows are expected)."""
    n = len(partition_rows(pipeline, table, partition_key, ["sample_id"]))
    return AssetCheckResult(passed=n > 0 or not expected, severity=AssetCheckSeverity.WARN,
                            metadata={"rows": n, "rows_expected": expected})
