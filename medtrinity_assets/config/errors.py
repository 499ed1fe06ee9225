"""One-line configuration errors that name the file, the entry and the field.

Pydantic reports a location tuple and an error type; a person editing a 200-line YAML needs
``sources.yaml: source 'ct' field 'format': 'dcm' is not one of dicom, nifti, ...``. This module
turns the first error of a :class:`pydantic.ValidationError` into that line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError


class ConfigError(ValueError):
    """A malformed configuration file; the message names the file, the entry and the field."""


def problem(message: str) -> PydanticCustomError:
    """An error raised inside a validator whose text is shown verbatim (no 'Value error,' prefix)."""
    return PydanticCustomError("medtrinity", message)  # without a context pydantic leaves the text as it is


def unknown_keys_message(unknown: Iterable[str], known: Iterable[str], what: str = "field") -> str:
    unknown, known = sorted(map(str, unknown)), sorted(map(str, known))
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hints.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    plural = "s" if len(unknown) > 1 else ""
    return f"unknown {what}{plural} {', '.join(hints)}; known: {', '.join(known)}"


MISSING_HINTS = {
    "name": "a partition key matching [a-z0-9_]+",
    "format": "one of dicom, nifti, msd, image_folder, coco, captions",
    "path": "folder or file of the source, relative to the YAML",
    "sources": "list the sources: - name: ..., format: ..., path: ...",
}


def _choices(expected: str) -> str:
    names = re.findall(r"'([^']*)'", expected)
    return ", ".join(names) if names else expected


def _describe(value: Any) -> str:
    return f"{value!r}" if not isinstance(value, (dict, list)) else f"a {type(value).__name__}"


def _message(err: dict[str, Any]) -> str:
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "medtrinity":
        return err["msg"]
    if kind == "value_error":
        return str(ctx.get("error", err["msg"])).removeprefix("Value error, ")
    if kind == "missing":
        loc = err["loc"]
        hint = MISSING_HINTS.get(str(loc[-1])) if loc and (len(loc) == 1 or loc[0] == "sources") else None
        return f"missing ({hint})" if hint else "missing"
    if kind == "literal_error":
        return f"{_describe(value)} is not one of {_choices(ctx.get('expected', ''))}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected an integer, got {_describe(value)}"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"expected a number, got {_describe(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {_describe(value)}"
    if kind in ("string_type", "string_sub_type"):
        return f"expected text, got {_describe(value)}"
    if kind in ("list_type", "tuple_type", "set_type", "iterable_type"):
        return f"expected a list, got {_describe(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type", "dataclass_type", "mapping_type"):
        return f"expected a mapping, got {_describe(value)}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), "?")
        what = "an integer" if isinstance(bound, int) and isinstance(value, int) else "a number"
        return f"expected {what} {op} {bound}, got {_describe(value)}"
    if kind in ("too_short", "too_long"):
        return f"expected {ctx.get('min_length', ctx.get('max_length', '?'))} item(s), got {_describe(value)}"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return "unknown field"
    return err["msg"]


# Lists whose entries are named: (path to the list, what one entry is called).
ENTRY_LISTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("sources",), "source"),
    (("knowledge", "corpora"), "corpus"),
    (("models",), "model"),
)


def _entry_name(raw: Any, listing: tuple[str, ...], index: int) -> str | None:
    """The ``name`` of the entry ``index`` of the list at ``listing`` in ``raw``, when it is a usable name."""
    items = raw
    for key in listing:
        items = items.get(key) if isinstance(items, dict) else None
    if isinstance(items, list) and 0 <= index < len(items) and isinstance(items[index], dict):
        name = items[index].get("name")
        if isinstance(name, str) and re.fullmatch(r"[a-z0-9_]+", name):
            return name
    return None


def _field(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            out += ("." if out else "") + str(part)
    return out


def location(file: Path | str, loc: tuple[Any, ...], raw: Any) -> str:
    """``<file>: source 'ct' field 'options.display'`` from a pydantic location."""
    loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
    who, rest = "", loc
    for listing, noun in ENTRY_LISTS:
        n = len(listing)
        if len(loc) > n and loc[:n] == listing and isinstance(loc[n], int):
            name = _entry_name(raw, listing, loc[n]) if loc[n + 1:n + 2] != ("name",) else None
            who, rest = (f"{noun} '{name}'" if name else f"{_field(loc[:n + 1])}"), loc[n + 1:]
            break
    field = _field(rest)
    where = " ".join(part for part in (who, f"field '{field}'" if field else "") if part)
    return f"{file}: {where}" if where else str(file)


def format_validation_error(exc: ValidationError, file: Path | str, raw: Any) -> str:
    """The first problem of ``exc`` as one line; how many more there are, if any."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    line = f"{location(file, tuple(first['loc']), raw)}: {_message(first)}"
    more = len(errors) - 1
    return line + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
