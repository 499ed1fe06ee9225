"""A source's label CSV: one row per file (column ``filename``), the rest labels and a few fields.

Shared by the NIfTI and image-folder readers. Column meaning:

- ``filename``: path relative to the source folder (checked by the reader before use);
- ``subject`` / ``patient_id``: the subject the file belongs to (decides the shard);
- ``modality`` / ``organ`` / ``disease``: override the source defaults for that file;
- ``label`` / ``labels`` / ``class`` / ``finding`` / ``findings`` / ``diagnosis``: class labels,
  several separated by ``;`` or ``|``;
- a column whose values are yes/no (1/0, true/false) is a label named after the column when true;
- any other column is copied into metadata only when its name is allow-listed (``FIELD_ALLOW``
  or the source option ``extra_fields``); the rest are dropped, because metadata is copied by
  allow-list only and a CSV may carry names, dates or record numbers.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtrinity_assets.deid import scrub
from medtrinity_assets.formats.base import Quarantined, ReadError

SUBJECT_COLUMNS = ("subject", "patient_id")
OVERRIDE_COLUMNS = ("modality", "organ", "disease")
LABEL_COLUMNS = ("label", "labels", "class", "finding", "findings", "diagnosis")
FIELD_ALLOW = frozenset({"view", "projection", "laterality", "body_part", "sex", "grade", "stage", "contrast",
                         "sequence", "split", "site_region"})
TRUE = {"1", "true", "yes", "y", "t"}
FALSE = {"0", "false", "no", "n", "f", ""}


@dataclass
class LabelRow:
    line: int  # 1-based line of the CSV (header is line 1)
    filename: str
    subject: str = ""
    overrides: dict[str, str] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    not_utf8: bool = False  # the line holds bytes that are not UTF-8: the row is refused, the file kept


def _split_labels(value: str) -> list[str]:
    return [p.strip() for p in re.split(r"[;|]", value) if p.strip()]


def read_label_table(path: Path, extra_fields: Iterable[str] = ()) -> list[LabelRow]:
    """Parse the CSV; a missing file or a missing ``filename`` column is a configuration error."""
    p = Path(path)
    if not p.is_file():
        raise ReadError("missing_labels_csv", f"labels CSV {p.name} does not exist; fix the source's labels_csv")
    allow = FIELD_ALLOW | {str(f).strip().lower() for f in extra_fields}
    # bytes that are not UTF-8 become surrogate escapes (PEP 383): only the rows holding them are lost
    text = p.read_bytes().decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    reader = csv.DictReader(text.splitlines())
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "filename" not in header:
        raise ReadError("bad_labels_csv", f"labels CSV {p.name} has no 'filename' column (columns: {header})")
    reader.fieldnames = header
    rows: list[LabelRow] = []
    for i, raw in enumerate(reader, start=2):
        values = {k: (v or "").strip() for k, v in raw.items() if k is not None and isinstance(v, (str, type(None)))}
        row = LabelRow(line=i, filename=values.get("filename", ""))
        if not all(_is_text(v) for v in values.values()):
            row.not_utf8 = True
            rows.append(row)
            continue
        for col in SUBJECT_COLUMNS:
            if values.get(col):
                row.subject = values[col]
                break
        for col in OVERRIDE_COLUMNS:
            if values.get(col):
                row.overrides[col] = values[col]
        for col, value in values.items():
            if col in ("filename", *SUBJECT_COLUMNS, *OVERRIDE_COLUMNS, "study", "series"):
                continue
            if col in LABEL_COLUMNS:
                row.labels.extend(_split_labels(value))
            elif value.lower() in TRUE and col not in allow:
                row.labels.append(col)
            elif value.lower() in FALSE and col not in allow:
                continue
            elif col in allow and value:
                row.fields[col] = value
        rows.append(row)
    return rows


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def rows_by_target(rows: list[LabelRow], resolve) -> tuple[dict[Path, LabelRow], list[tuple[LabelRow, ReadError]]]:
    """Map each row to the file it names via ``resolve`` (which raises ReadError); collect the failures."""
    good: dict[Path, LabelRow] = {}
    bad: list[tuple[LabelRow, ReadError]] = []
    for row in rows:
        if row.not_utf8:
            bad.append((row, ReadError("bad_encoding", "the row is not UTF-8 text; it is ignored "
                                                       "(its file, if any, is read without it) -- re-save the CSV "
                                                       "as UTF-8")))
            continue
        try:
            target = resolve(row.filename)
        except ReadError as err:
            bad.append((row, err))
            continue
        if target in good:
            bad.append((row, ReadError("duplicate_row", f"line {row.line}: {row.filename!r} is already listed on "
                                                        f"line {good[target].line}; the first row is used")))
            continue
        good[target] = row
    return good, bad


def row_meta(row: LabelRow | None) -> dict[str, Any]:
    return {"fields": dict(row.fields)} if row is not None and row.fields else {}


def row_quarantine(rel_path: str, error_class: str, reason: str, row: LabelRow | None) -> Quarantined:
    """A quarantine row whose path and reason have the row's subject id scrubbed out."""
    idents = (row.subject,) if row is not None and row.subject else ()
    if not idents:
        return Quarantined(rel_path, error_class, reason)
    return Quarantined(scrub(rel_path, idents), error_class, scrub(reason, idents))
