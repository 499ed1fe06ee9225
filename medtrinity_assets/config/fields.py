"""Building blocks of the typed configuration: the base model and the field types every section shares.

Why a base class: every section refuses keys it does not know (a typo must not silently fall back
to a default) and names the close match; every path is resolved against the YAML file that wrote it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationInfo, model_validator

from medtrinity_assets.config.errors import problem, unknown_keys_message

NAME_RE = re.compile(r"^[a-z0-9_]+$")


class Settings(BaseModel):
    """A configuration mapping: immutable, unknown keys are errors (with a 'did you mean')."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set()
            for name, f in cls.model_fields.items():
                known.add(name)
                alias = f.validation_alias
                known.update(getattr(alias, "choices", None) or ([alias] if isinstance(alias, str) else []))
            unknown = [k for k in data if k not in known]
            if unknown:
                raise problem(unknown_keys_message(unknown, [n for n in cls.model_fields if n in known]))
        return data

    def explicit(self) -> dict[str, Any]:
        """Only the keys the YAML set, as plain JSON values: what a change of configuration is measured on."""
        return self.model_dump(mode="json", exclude_unset=True)


def _base(info: ValidationInfo) -> Path | None:
    context = info.context or {}
    base = context.get("base")
    return Path(base) if base is not None else None


def _as_path(value: Any, info: ValidationInfo) -> Any:
    """A path string of the YAML -> an absolute path (relative to the YAML file's folder; ``~`` expanded)."""
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise problem(f"expected a path, got {value!r}")
    path = Path(os.path.expanduser(value.strip()))
    base = _base(info)
    if path.is_absolute() or base is None:
        return path
    return (base / path).resolve()


ConfigPath = Annotated[Path, BeforeValidator(_as_path)]


def _name(value: Any) -> Any:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise problem(f"{value!r} must match [a-z0-9_]+ (it becomes a partition key)")
    return value


Name = Annotated[str, BeforeValidator(_name)]


def int_at_least(minimum: int):
    """An integer field (never a bool or a float) with a lower bound, in the project's words."""

    def check(value: Any) -> Any:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise problem(f"expected an integer >= {minimum}, got {value!r}")
        return value

    return Annotated[int, BeforeValidator(check)]


def number_at_least(minimum: float, *, above: bool = False, optional: bool = False):
    """A real-number field (an integer is fine, a bool is not) with a lower bound; ``optional``: null allowed."""

    def check(value: Any) -> Any:
        if value is None and optional:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        if not ok or (value <= minimum if above else value < minimum):
            raise problem(f"expected a number {'>' if above else '>='} {minimum}, got {value!r}")
        return float(value)

    return Annotated[float | None, BeforeValidator(check)] if optional else Annotated[float, BeforeValidator(check)]


def keys_of(cls: type) -> BeforeValidator:
    """For a field typed as a stdlib dataclass: unknown keys are an error naming the known ones."""
    known = [f.name for f in dataclasses.fields(cls)]

    def check(value: Any) -> Any:
        if isinstance(value, dict):
            unknown = [k for k in value if k not in known]
            if unknown:
                raise problem(unknown_keys_message(unknown, known))
        return value

    return BeforeValidator(check)


# --- cron -------------------------------------------------------------------------------------------

_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_CRON_NAMES = {
    3: {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    4: {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
}
_CRON_ALIASES = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight")


def cron_problem(text: str) -> str | None:
    """Why ``text`` is not a five-field cron string (minute hour day month weekday), or None."""
    text = text.strip()
    if text in _CRON_ALIASES:
        return None
    parts = text.split()
    if len(parts) != 5:
        return f"{text!r} is not a cron string: expected 5 fields (minute hour day month weekday), got {len(parts)}"
    for i, (part, (what, lo, hi)) in enumerate(zip(parts, _CRON_FIELDS)):
        names = _CRON_NAMES.get(i, {})
        for item in part.split(","):
            rng, _, step = item.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                return f"{text!r}: {what} step {step!r} is not a positive integer"
            if rng == "*":
                continue
            ends = rng.split("-")
            if len(ends) > 2 or not all(ends):
                return f"{text!r}: {what} {item!r} is not a value, a range a-b or */n"
            values = []
            for end in ends:
                value = names.get(end.lower()) if not end.isdigit() else int(end)
                if value is None or not lo <= value <= hi:
                    return f"{text!r}: {what} {end!r} is outside {lo}-{hi}"
                values.append(value)  # a-b with a > b wraps around, as in Dagster
    return None


def _cron(value: Any) -> Any:
    if not isinstance(value, str):
        raise problem(f"expected a cron string like '0 3 * * 0', got {value!r}")
    why = cron_problem(value)
    if why:
        raise problem(why)
    return value.strip()


Cron = Annotated[str, BeforeValidator(_cron)]


def _nonempty_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise problem(f"expected text, got {value!r}")
    return value


Text = Annotated[str, BeforeValidator(_nonempty_text)]


def _no_blank(value: str) -> str:
    if not value.strip():
        raise problem("must not be empty")
    return value


NonBlank = Annotated[str, BeforeValidator(_nonempty_text), AfterValidator(_no_blank)]
