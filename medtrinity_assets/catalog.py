"""The DuckDB catalog: one view per table folder under ``<data_root>/tables``.

Parquet files are the storage (one per asset partition, each written by one run); DuckDB only holds
views over them, so concurrent runs never contend for a DuckDB writer lock. The catalog file is
rebuilt into a temporary file and renamed into place, so a reader never sees it half-made.

The views never show a row whose upstream row is gone. Between a run that rewrote a partition
upstream (a source rescanned, a shard re-ingested) and the rerun of what depends on it (or after a
kill in between), the downstream Parquet files still hold rows of images that no longer exist.
So ``images`` keeps the rows whose (source, item_key) is in ``manifest``, and every other table
with a ``sample_id`` keeps the rows whose sample is in ``images``: the catalog is a consistent view
of what exists now, at the price of a hash semi-join per query.
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


class CatalogError(ValueError):
    """A query the catalog cannot answer, or a catalog that cannot be read; the message is one line."""


# table -> (the table its rows need, the columns that join them); tables with a sample_id need images
UPSTREAM: dict[str, tuple[str, tuple[str, ...]]] = {"images": ("manifest", ("source", "item_key"))}
SAMPLE_UPSTREAM = ("images", ("sample_id",))
INDEPENDENT = ("manifest", "quarantine")  # quarantine rows are a record of what was refused, kept as is


def _upstream_of(name: str, columns: set[str], present: set[str]) -> tuple[str, tuple[str, ...]] | None:
    if name in INDEPENDENT:
        return None
    up = UPSTREAM.get(name) or (SAMPLE_UPSTREAM if "sample_id" in columns else None)
    if up is None or up[0] not in present or not set(up[1]) <= columns:
        return None
    return up


def _view_sql(raw: str, upstream: tuple[str, tuple[str, ...]] | None) -> str:
    if upstream is None:
        return raw
    table, cols = upstream
    on = " AND ".join(f'r."{c}" = u."{c}"' for c in cols)
    return f'SELECT r.* FROM ({raw}) AS r SEMI JOIN "{table}" AS u ON {on}'


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
        raw: dict[str, str] = {}
        columns: dict[str, set[str]] = {}
        for name in names:
            glob = layout.table_glob(name).replace("'", "''")
            raw[name] = f"SELECT * FROM read_parquet('{glob}', union_by_name=true, hive_partitioning=false)"
            columns[name] = {row[0] for row in con.execute(f"DESCRIBE {raw[name]}").fetchall()}
        for name, schema in BASE_VIEWS.items():
            if name not in raw:
                raw[name], columns[name] = _empty_select(schema), set(schema.names)
        present = set(raw)
        # upstream views first: images reads manifest, the sample tables read images
        order = sorted(raw, key=lambda n: (n != "manifest", n != "images", n))
        for name in order:
            con.execute(f'CREATE VIEW "{name}" AS {_view_sql(raw[name], _upstream_of(name, columns[name], present))}')
        con.close()
        os.replace(tmp, layout.catalog)
    finally:
        for leftover in (tmp, tmp + ".wal"):
            Path(leftover).unlink(missing_ok=True)
    return layout.catalog


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def query(layout: DataLayout, sql: str) -> pa.Table:
    """Run a read-only query against the catalog (refreshing it first if it does not exist).

    A query DuckDB refuses (syntax, an unknown view or column, a write) is a :class:`CatalogError`
    with DuckDB's reason and the views there are, on one line.
    """
    import duckdb

    if not layout.catalog.exists():
        refresh_catalog(layout)
    try:
        con = duckdb.connect(str(layout.catalog), read_only=True)
    except duckdb.Error as exc:
        raise CatalogError(f"{layout.catalog}: cannot open the catalog ({_one_line(exc)})") from None
    try:
        try:
            relation = con.sql(sql)
            return relation.to_arrow_table() if relation is not None else pa.table({})
        except duckdb.Error as exc:
            views = sorted(r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall())
            raise CatalogError(f"query failed: {_one_line(exc)} (views: {', '.join(views)})") from None
    finally:
        con.close()
