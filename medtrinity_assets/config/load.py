"""Reading the sources YAML: parse, validate the whole model, then check what it points at.

Two levels, both at load time (never hours later in a stage):
- the model (:func:`read_config`): types, names, choices, cron strings, cross-field rules;
- the files (:func:`check_paths`): every source folder exists, every named file exists, the output
  folder is not a file and not inside a source folder (a run would ingest its own outputs), the
  model registry parses, the generator's and encoder's folders and key variable exist.
:func:`load_config` does both. The Dagster code location reads the model only, so the UI still
loads while a source folder is unmounted; the CLI and the ingest stage check the files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from medtrinity_assets.config.errors import ConfigError, format_validation_error, unknown_keys_message
from medtrinity_assets.config.model import PipelineConfig, SourceSpec

DEFAULT_CONFIG_ENV = "MEDTRINITY_CONFIG"
FOLDER_FORMATS = ("nifti", "msd", "image_folder", "coco")  # dicom and captions may also name one file


def _read_yaml(file: Path) -> Any:
    if not file.is_file():
        what = "is a folder, not a file" if file.is_dir() else "not found"
        raise ConfigError(f"{file}: configuration file {what} (set --config or ${DEFAULT_CONFIG_ENV})")
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not a text file (UTF-8 expected)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {' '.join(str(exc).split())}") from None


def read_config(path: str | os.PathLike[str]) -> PipelineConfig:
    """Parse and validate the model of a sources YAML (relative paths are relative to the file)."""
    file = Path(path).resolve()
    raw = _read_yaml(file)
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: top level must be a mapping with 'data_root' and 'sources'")
    known = [n for n in PipelineConfig.model_fields if n != "config_path"]
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise ConfigError(f"{file}: {unknown_keys_message(unknown, known, what='top-level key')}")
    try:
        return PipelineConfig.model_validate({**raw, "config_path": file}, context={"base": file.parent})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, file, raw)) from None


def load_config(path: str | os.PathLike[str], *, check_files: bool = True) -> PipelineConfig:
    """Read, validate and (unless ``check_files=False``) check every path the configuration names."""
    cfg = read_config(path)
    if check_files:
        check_paths(cfg)
    return cfg


# --- what the configuration points at -----------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def source_path_problem(source: SourceSpec) -> str | None:
    """Why the folder (or file) of ``source`` cannot be read, as ``field '...': ...``; None when fine."""
    p = source.path
    if not p.exists():
        return f"field 'path': {p} does not exist; fix the path (relative to the YAML) or mount the folder"
    if source.format in FOLDER_FORMATS and not p.is_dir():
        return f"field 'path': {p} is a file; a {source.format} source is a folder"
    if source.labels is not None and not source.labels.is_dir():
        return f"field 'labels': folder {source.labels} does not exist"
    if source.labels_csv is not None and not source.labels_csv.is_file():
        return f"field 'labels_csv': file {source.labels_csv} does not exist"
    for root in source.allow_links_into:
        if not root.is_dir():
            return f"field 'allow_links_into': folder {root} does not exist"
    masks = source.expert_masks
    if masks is not None:
        if not masks.path.is_dir():
            return f"field 'expert_masks.path': folder {masks.path} does not exist"
        if isinstance(masks.labels, Path) and not masks.labels.is_file():
            return f"field 'expert_masks.labels': file {masks.labels} does not exist"
    return None


def check_source(cfg: PipelineConfig, source: SourceSpec) -> None:
    """:func:`source_path_problem` as a :class:`ConfigError` naming the file and the source."""
    why = source_path_problem(source)
    if why:
        raise ConfigError(f"{cfg.config_path}: source '{source.name}' {why}")


def check_paths(cfg: PipelineConfig) -> None:
    """Every path of ``cfg`` exists and has the right kind; the output folder is safe to write."""
    file = cfg.config_path
    root = cfg.data_root
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{file}: field 'data_root': {root} is a file; name a folder for the outputs")
    for folder in cfg.allow_links_into:
        if not folder.is_dir():
            raise ConfigError(f"{file}: field 'allow_links_into': folder {folder} does not exist")
    for source in cfg.sources:
        check_source(cfg, source)
        folder = source.path if source.path.is_dir() else source.path.parent
        if source.path.is_dir() and _inside(root, folder):
            raise ConfigError(
                f"{file}: field 'data_root': {root} lies inside the folder of source '{source.name}' ({folder}); "
                "a run would read its own outputs as new images. Put data_root outside every source folder"
            )
    for key in ("models", "eval_hashes"):
        value = getattr(cfg, key)
        if value is not None and not value.is_file():
            raise ConfigError(f"{file}: field '{key}': file {value} does not exist")
    if cfg.models is not None:
        from medtrinity_assets.config.models_file import read_models_file

        read_models_file(cfg.models)
    for corpus in cfg.corpora:
        if not corpus.path.exists():
            raise ConfigError(f"{file}: corpus '{corpus.name}' field 'path': {corpus.path} does not exist")
    _check_knowledge(cfg)
    _check_generator(cfg)
    _check_lesion_data(cfg)
    phi = cfg.quality.phi_identifiers_file
    if phi is not None and not phi.is_file():
        raise ConfigError(f"{file}: field 'quality.phi_identifiers_file': file {phi} does not exist")


def _check_knowledge(cfg: PipelineConfig) -> None:
    encoder = cfg.knowledge.encoder
    if not encoder:
        return
    from medtrinity_assets.knowledge.embedding import EncoderError, resolve_encoder

    try:
        resolve_encoder(encoder)
    except EncoderError as exc:
        raise ConfigError(f"{cfg.config_path}: field 'knowledge.encoder': {exc}") from None


def _check_generator(cfg: PipelineConfig) -> None:
    gen, file = cfg.generator, cfg.config_path
    if gen.backend == "transformers" and gen.model_dir is not None and not (gen.model_dir / "config.json").is_file():
        raise ConfigError(f"{file}: field 'generator.model_dir': {gen.model_dir} is not a saved Hugging Face model "
                          "folder (no config.json)")
    if gen.backend == "openai" and gen.api_key_env and not os.environ.get(gen.api_key_env):
        raise ConfigError(f"{file}: field 'generator.api_key_env': ${gen.api_key_env} is not set; export it, "
                          "or remove api_key_env for a local server")


def _check_lesion_data(cfg: PipelineConfig) -> None:
    """The lesion model's training volumes (``package.module:function``) must import, before hours of work."""
    spec = cfg.rois.lesion_model.data
    if not spec:
        return
    from medtrinity_assets.roi.lesion_model import load_volume_source

    try:
        load_volume_source(spec)
    except ValueError as exc:
        why = str(exc).removeprefix(f"rois.lesion_model.data {spec!r}").lstrip(": ")
        raise ConfigError(f"{cfg.config_path}: field 'rois.lesion_model.data': {spec!r}: {why}") from None


def default_config_path() -> Path:
    """$MEDTRINITY_CONFIG, else data/sources.yaml under the current directory."""
    return Path(os.environ.get(DEFAULT_CONFIG_ENV) or Path.cwd() / "data" / "sources.yaml")
