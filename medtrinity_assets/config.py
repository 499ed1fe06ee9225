"""The pipeline's configuration: one YAML file lists the sources, the knowledge corpora and the knobs.

Everything downstream reads a :class:`PipelineConfig`; nothing else parses YAML. Errors name the
entry and the field so that a user editing a 200-line file knows where to look.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FORMATS = ("dicom", "nifti", "msd", "image_folder", "coco", "captions")
ROI_MODES = ("ground_truth", "expert", "none")
CORPUS_FORMATS = ("core", "medrag", "jsonl", "markdown")
NAME_RE = re.compile(r"^[a-z0-9_]+$")
DEFAULT_SCHEDULE = "0 3 * * 0"  # weekly, Sunday 03:00
DEFAULT_CONFIG_ENV = "MEDTRINITY_CONFIG"


class ConfigError(ValueError):
    """A malformed configuration file; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class SourceSpec:
    """One input source: a folder of files of one format, with defaults for what the files do not say."""

    name: str
    format: str
    path: Path
    labels: Path | None = None
    labels_csv: Path | None = None
    label_names: dict[int, str] = field(default_factory=dict)
    modality: str | None = None
    organ: str | None = None
    disease: str | None = None
    roi: str = "ground_truth"
    licence: str = "unknown"
    schedule: str = DEFAULT_SCHEDULE
    # reader/preprocessing options that a few sources need (allow_burned_in, display, context_slices ...)
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True)
class CorpusSpec:
    """One knowledge corpus: the bundled core corpus, a MedRAG JSONL file/folder, or plain JSONL/Markdown."""

    name: str
    format: str
    path: Path


@dataclass(frozen=True)
class PipelineConfig:
    config_path: Path
    data_root: Path
    sources: tuple[SourceSpec, ...]
    corpora: tuple[CorpusSpec, ...] = ()
    shards: int = 4
    salt: str | None = None
    max_side: int = 512
    context_slices: int = 3
    min_component_pixels: int = 9
    models_file: Path | None = None
    eval_hashes: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # free-form sections: generator, knowledge, quality

    def source(self, name: str) -> SourceSpec:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"source {name!r} is not in {self.config_path}; known: {[s.name for s in self.sources]}")

    def corpus(self, name: str) -> CorpusSpec:
        for c in self.corpora:
            if c.name == name:
                return c
        raise KeyError(f"corpus {name!r} is not in {self.config_path}; known: {[c.name for c in self.corpora]}")

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.settings.get(name) or {})


def _resolve(base: Path, value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a path string, got {value!r}")
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p).resolve()


def _parse_source(base: Path, raw: Any, index: int, file: Path) -> SourceSpec:
    where = f"{file}: sources[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with name/format/path, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(f"{where} field 'name': {name!r} must match [a-z0-9_]+ (it becomes a partition key)")
    where = f"{file}: source '{name}'"
    fmt = raw.get("format")
    if fmt not in FORMATS:
        raise ConfigError(f"{where} field 'format': {fmt!r} is not one of {', '.join(FORMATS)}")
    if "path" not in raw:
        raise ConfigError(f"{where} field 'path': missing (folder or file of the source, relative to the YAML)")
    path = _resolve(base, raw["path"], f"{where} field 'path'")
    roi = raw.get("roi", "ground_truth")
    if roi not in ROI_MODES:
        raise ConfigError(f"{where} field 'roi': {roi!r} is not one of {', '.join(ROI_MODES)}")
    names_raw = raw.get("label_names") or {}
    if not isinstance(names_raw, dict):
        raise ConfigError(f"{where} field 'label_names': expected a mapping like {{1: tumour}}")
    label_names: dict[int, str] = {}
    for k, v in names_raw.items():
        try:
            label_names[int(k)] = str(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} field 'label_names': key {k!r} is not an integer voxel value") from None
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where} field 'options': expected a mapping")
    known = {"name", "format", "path", "labels", "labels_csv", "label_names", "modality", "organ", "disease",
             "roi", "licence", "license", "schedule", "options"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known fields: {sorted(known)}")
    for key in ("modality", "organ", "disease", "licence", "license", "schedule"):
        if key in raw and raw[key] is not None and not isinstance(raw[key], str):
            raise ConfigError(f"{where} field '{key}': expected text, got {raw[key]!r}")
    return SourceSpec(
        name=name,
        format=fmt,
        path=path,
        labels=_resolve(base, raw["labels"], f"{where} field 'labels'") if raw.get("labels") else None,
        labels_csv=_resolve(base, raw["labels_csv"], f"{where} field 'labels_csv'") if raw.get("labels_csv") else None,
        label_names=label_names,
        modality=raw.get("modality"),
        organ=raw.get("organ"),
        disease=raw.get("disease"),
        roi=roi,
        licence=raw.get("licence") or raw.get("license") or "unknown",
        schedule=raw.get("schedule") or DEFAULT_SCHEDULE,
        options=dict(options),
    )


def _parse_corpus(base: Path, raw: Any, index: int, file: Path) -> CorpusSpec:
    where = f"{file}: knowledge.corpora[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with name/format/path")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(f"{where} field 'name': {name!r} must match [a-z0-9_]+")
    fmt = raw.get("format", "medrag")
    if fmt not in CORPUS_FORMATS:
        raise ConfigError(f"{file}: corpus '{name}' field 'format': {fmt!r} is not one of {', '.join(CORPUS_FORMATS)}")
    if "path" not in raw:
        raise ConfigError(f"{file}: corpus '{name}' field 'path': missing")
    return CorpusSpec(name=name, format=fmt, path=_resolve(base, raw["path"], f"{file}: corpus '{name}' field 'path'"))


def _int(raw: dict, key: str, default: int, file: Path, minimum: int = 1) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{file}: field '{key}': expected an integer >= {minimum}, got {value!r}")
    return value


def load_config(path: str | os.PathLike[str]) -> PipelineConfig:
    """Read and validate a sources YAML. Relative paths are relative to the YAML file itself."""
    file = Path(path).resolve()
    if not file.is_file():
        raise ConfigError(f"{file}: configuration file not found (set --config or ${DEFAULT_CONFIG_ENV})")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: top level must be a mapping with 'data_root' and 'sources'")
    base = file.parent
    data_root = _resolve(base, raw.get("data_root", "out"), f"{file}: field 'data_root'")
    sources_raw = raw.get("sources") or []
    if not isinstance(sources_raw, list):
        raise ConfigError(f"{file}: field 'sources': expected a list of source entries")
    sources = tuple(_parse_source(base, s, i, file) for i, s in enumerate(sources_raw))
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{file}: field 'sources': duplicate source name(s) {dupes}")
    knowledge = raw.get("knowledge") or {}
    if not isinstance(knowledge, dict):
        raise ConfigError(f"{file}: field 'knowledge': expected a mapping")
    corpora_raw = knowledge.get("corpora") or []
    if not isinstance(corpora_raw, list):
        raise ConfigError(f"{file}: field 'knowledge.corpora': expected a list")
    corpora = tuple(_parse_corpus(base, c, i, file) for i, c in enumerate(corpora_raw))
    salt = raw.get("salt") or os.environ.get("MEDTRINITY_SALT")
    if salt is not None and not isinstance(salt, str):
        raise ConfigError(f"{file}: field 'salt': expected text")
    settings = {k: raw[k] for k in ("ingest", "generator", "knowledge", "quality", "rois", "exports") if isinstance(raw.get(k), dict)}
    return PipelineConfig(
        config_path=file,
        data_root=data_root,
        sources=sources,
        corpora=corpora,
        shards=_int(raw, "shards", 4, file),
        salt=salt,
        max_side=_int(raw, "max_side", 512, file, minimum=16),
        context_slices=_int(raw, "context_slices", 3, file, minimum=0),
        min_component_pixels=_int(raw, "min_component_pixels", 9, file),
        models_file=_resolve(base, raw["models"], f"{file}: field 'models'") if raw.get("models") else None,
        eval_hashes=_resolve(base, raw["eval_hashes"], f"{file}: field 'eval_hashes'") if raw.get("eval_hashes") else None,
        settings=settings,
    )


def default_config_path() -> Path:
    """$MEDTRINITY_CONFIG, else data/sources.yaml under the current directory."""
    return Path(os.environ.get(DEFAULT_CONFIG_ENV) or Path.cwd() / "data" / "sources.yaml")
