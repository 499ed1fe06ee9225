"""The expert-model registry file (``models:`` of the sources YAML) as typed entries, checked at load.

Only the shape of each entry is checked here (kinds, fields, types). Whether a model's weights
exist and match their digest is the ROI stage's business (:mod:`medtrinity_assets.roi.registry`):
a model written by the ``lesion_model`` asset does not exist before its first run, and hashing
gigabytes of weights on every start would make the CLI slow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from medtrinity_assets.config.errors import ConfigError, format_validation_error, problem
from medtrinity_assets.config.fields import Name, NonBlank, Settings, Text, number_at_least


class AppliesTo(Settings):
    modalities: tuple[Text, ...] = ()  # empty = any
    organs: tuple[Text, ...] = ()


class ModelEntry(Settings):
    name: Name
    kind: Literal["builtin", "torchscript", "monai_bundle"]
    path: NonBlank | None = None  # file or folder, relative to the registry file; '@models/' = <data_root>/models
    version: Text | None = None
    sha256: Text | None = None  # quote it: YAML reads an all-digit digest as a number
    # the names of roi.registry.BUILTINS (a test keeps the two lists equal)
    builtin: Literal["ct_anatomy", "chest_xray", "brain", "field_of_view"] | None = None
    scope: Text | None = None  # what the model is for, in a sentence
    confidence: dict[Text, float] = Field(default_factory=dict)  # label -> measured score in [0, 1]
    trusted: bool = False  # monai_bundle: the operator vouches for the code its config executes
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    labels: dict[int, Text] = Field(default_factory=dict)  # output channel -> name
    preprocess: dict[str, Any] = Field(default_factory=dict)
    threshold: number_at_least(0) = 0.5

    @field_validator("applies_to", "labels", "preprocess", "confidence", mode="before")
    @classmethod
    def _empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("confidence")
    @classmethod
    def _scores(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise problem(f"scores must lie between 0 and 1, got {bad}")
        return value

    @model_validator(mode="after")
    def _kind_needs(self) -> ModelEntry:
        if self.kind == "builtin" and not self.version:
            raise problem("a built-in model needs 'version'")
        if self.kind != "builtin" and not self.path:
            raise problem(f"a {self.kind} model needs 'path' (weights file or model folder, relative to the registry)")
        return self


class ModelsFile(Settings):
    models: tuple[ModelEntry, ...]

    @field_validator("models")
    @classmethod
    def _named_once(cls, value: tuple[ModelEntry, ...]) -> tuple[ModelEntry, ...]:
        names = [m.name for m in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise problem(f"duplicate model name(s) {dupes}")
        return value


def read_models_file(path: Path) -> ModelsFile:
    """Parse and check the registry file; a problem is a :class:`ConfigError` naming the model and field."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the model registry ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping with a 'models' list")
    try:
        return ModelsFile.model_validate(raw)
    except ValidationError as exc:
        line = format_validation_error(exc, path, raw)
        raise ConfigError(line) from None
