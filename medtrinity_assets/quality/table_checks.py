"""Schema checks: the columns a table must have for the stages that read it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass
class SchemaReport:
    exists: bool
    rows: int
    missing_columns: list[str]
    wrong_types: list[str]

    @property
    def ok(self) -> bool:
        return self.exists and not self.missing_columns and not self.wrong_types


def check_schema(path: Path, expected: pa.Schema, required: tuple[str, ...] | None = None) -> SchemaReport:
    """Compare a partition file with its schema; ``required`` limits the columns that must exist."""
    if not Path(path).exists():
        return SchemaReport(False, 0, list(required or expected.names), [])
    pf = pq.ParquetFile(path)
    actual = pf.schema_arrow
    names = required if required is not None else tuple(expected.names)
    missing = [n for n in names if n not in actual.names]
    wrong = []
    for n in names:
        if n in actual.names and n in expected.names and not actual.field(n).type.equals(expected.field(n).type):
            wrong.append(f"{n}: {actual.field(n).type} (expected {expected.field(n).type})")
    return SchemaReport(True, pf.metadata.num_rows, missing, wrong)
