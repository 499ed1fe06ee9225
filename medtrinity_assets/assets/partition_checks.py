"""Building blocks for the checks that come with a materialisation.

Each asset declares its checks as ``check_specs`` and returns their results with the materialisation,
computed from the rows it has just written (no second read of the partition, no extra step per check
in the run: a source x shard run is four steps, not seventeen). A blocking check that fails stops what
follows the asset in the run (Dagster's blocking semantics) and is recorded per partition, which the
exports' gate reads. The logic of each check lives in ``quality/``; these helpers turn its outcome into
an ``AssetCheckResult`` with its numbers as metadata.
"""

from __future__ import annotations

from pathlib import Path

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue, TableColumn, TableSchema

from medtrinity_assets.partitions import source_shard_partitions


def schema_metadata(table) -> TableSchema:
    """A Parquet table's columns as Dagster's ``dagster/column_schema`` metadata."""
    return TableSchema(columns=[TableColumn(f.name, str(f.type)) for f in table.schema])


def check_spec(asset: str, name: str, description: str, *, blocking: bool = False,
               partitions_def=source_shard_partitions) -> AssetCheckSpec:
    """A check on ``asset``, evaluated per partition (source x shard unless told otherwise)."""
    return AssetCheckSpec(name, asset=asset, description=description, blocking=blocking, partitions_def=partitions_def)


def schema_check(name: str, path: Path, schema, required=None) -> AssetCheckResult:
    """Blocking result: the file just written has every column of ``schema`` with the right types."""
    from medtrinity_assets.quality.table_checks import check_schema

    rep = check_schema(path, schema, required)
    return AssetCheckResult(
        check_name=name,
        passed=rep.ok,
        severity=AssetCheckSeverity.ERROR,
        metadata={"rows": rep.rows, "file_exists": rep.exists, "missing_columns": MetadataValue.json(rep.missing_columns),
                  "wrong_types": MetadataValue.json(rep.wrong_types)},
        description=None if rep.ok else f"{path.name} does not match its schema; rematerialise it",
    )


def non_empty_check(name: str, rows: int, expected: bool = True) -> AssetCheckResult:
    """Warning result: the partition holds rows (when rows are expected)."""
    return AssetCheckResult(check_name=name, passed=rows > 0 or not expected, severity=AssetCheckSeverity.WARN,
                            metadata={"rows": rows, "rows_expected": expected})
