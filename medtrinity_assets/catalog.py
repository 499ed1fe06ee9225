"""The DuckDB catalog: one view per table folder under ``<data_root>/tables``.

Parquet files are the storage (one per asset partition, each written by one run); DuckDB only holds
views over them, so concurrent runs never contend for a DuckDB writer lock. The catalog file is
rebuilt into a temporary file and renamed into place, so a reader never sees it half-made.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa

from medtrinity_assets.storage import DataLayout
from medtrinity_assets.tables import IMAGE_SCHEMA, MANIFEST_SCHEMA, QUARANTINE_SCHEMA

# Views that exist even before anything was materialised (empty, with their columns).
BASE_VIEWS: dict[str, pa.Schema] = {"images": IMAGE_SCHEMA, "quarantine": QUARANTINE_SCHEMA, "manifest": MANIFEST_SCHEMA}

_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.float32(): "FLOAT",
    pa.bool_(): "BOOLEAN",
}


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return f"{_duck_type(t.value_type)}[]"
    return _DUCK_TYPES.get(t, "VARCHAR")


def _empty_select(schema: pa.Schema) -> str:
    cols = ", ".join(f"CAST(NULL AS {_duck_type(f.type)}) AS \"{f.name}\"" for f in schema)
    return f"SELECT {cols} WHERE false"


def table_names(layout: DataLayout) -> list[str]:
    root = layout.root / "tables"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.rglob("*.parquet")))


def refresh_catalog(layout: DataLayout) -> Path:
    """(Re)create ``catalog.duckdb`` with a view per table folder; returns its path."""
    import duckdb

    layout.root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=layout.root, prefix=".catalog.", suffix=".duckdb")
    os.close(fd)
    os.unlink(tmp)  # duckdb wants to create the file itself
    try:
        con = duckdb.connect(tmp)
        names = table_names(layout)
        for name in names:
            glob = layout.table_glob(name).replace("'", "''")
            con.execute(
                f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{glob}', union_by_name=true, hive_partitioning=false)"
            )
        for name, schema in BASE_VIEWS.items():
            if name not in names:
                con.execute(f"CREATE VIEW \"{name}\" AS {_empty_select(schema)}")
        con.close()
        os.replace(tmp, layout.catalog)
    finally:
        for leftover in (tmp, tmp + ".wal"):
            Path(leftover).unlink(missing_ok=True)
    return layout.catalog


def query(layout: DataLayout, sql: str) -> pa.Table:
    """Run a read-only query against the catalog (refreshing it first if it does not exist)."""
    import duckdb

    if not layout.catalog.exists():
        refresh_catalog(layout)
    con = duckdb.connect(str(layout.catalog), read_only=True)
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()
