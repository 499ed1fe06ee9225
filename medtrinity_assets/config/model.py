"""The sources YAML as typed models: the top level, one entry per source, per-source options.

Everything downstream reads a :class:`PipelineConfig`; nothing else parses YAML. Validation is
pydantic's (the same library Dagster's own ``Config`` uses); :mod:`.errors` words its errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field, field_validator, model_validator

from medtrinity_assets.config.errors import problem
from medtrinity_assets.config.fields import ConfigPath, Cron, Name, Settings, Text, int_at_least, number_at_least
from medtrinity_assets.config.sections import (
    CorpusSpec,
    ExportsSection,
    GeneratorSection,
    IngestSection,
    KnowledgeSection,
    QualitySection,
    RoisSection,
)

FORMATS = ("dicom", "nifti", "msd", "image_folder", "coco", "captions")
ROI_MODES = ("ground_truth", "expert", "none")
DEFAULT_SCHEDULE = "0 3 * * 0"  # weekly, Sunday 03:00


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


class SourceOptions(Settings):
    """Reader and preprocessing switches a few sources need; a reader's own default applies when unset."""

    allow_burned_in: bool = False  # DICOM marked BurnedInAnnotation=YES is otherwise quarantined
    display: Annotated[Literal["radiological", "unknown", "none"] | None, BeforeValidator(_blank_is_none)] = None  # 2D pictures
    pixel_spacing: tuple[number_at_least(0, above=True), number_at_least(0, above=True)] | None = None  # [row_mm, col_mm]
    max_pixels: int_at_least(1) | None = None  # decompression-bomb limit per 2D image (default 89,478,485)
    max_voxels: int_at_least(1) | None = None  # largest volume read (default 2**29)
    extra_fields: tuple[str, ...] = ()  # more label-CSV columns to keep
    context_slices: int_at_least(0) | None = None  # overrides the top-level context_slices
    rescan_on_schedule: bool = False  # the source's schedule rescans the folder first
    pixel_phi: Literal["redact", "quarantine", "keep"] = "redact"  # burned-in identifiers: black out | quarantine | leave
    pixel_ocr: Literal["auto", "always", "never"] = "auto"  # which images are read for burned-in text (deid.pixels)
    text_phi: Literal["redact", "keep"] = "redact"  # captions, CSV text columns, metadata strings (deid.item)


class ExpertMasks(Settings):
    """Per-volume multi-label masks made elsewhere (TotalSegmentator, nnU-Net, MONAI Label), used as an expert
    (:mod:`medtrinity_assets.roi.precomputed`); their ROIs get origin ``expert:<name>@<version>``."""

    name: Name
    version: Text  # bump it when the masks are regenerated: the partitions that used them rerun
    path: ConfigPath  # folder of masks, one per volume (same relative path, <stem>.nii.gz, or <stem>/<class>.nii.gz)
    # value -> name: a JSON/CSV file, a mapping, or 'totalsegmentator' (one binary file per class, named by it)
    labels: Literal["totalsegmentator"] | dict[int, Text] | ConfigPath  # the word first: a path would swallow it

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "totalsegmentator":
            return "totalsegmentator"
        return value


def _label_names(value: Any) -> Any:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise problem("expected a mapping like {1: tumour}")
    out: dict[int, str] = {}
    for k, v in value.items():
        try:
            out[int(k)] = str(v)
        except (TypeError, ValueError):
            raise problem(f"key {k!r} is not an integer voxel value") from None
    return out


def _default_schedule(value: Any) -> Any:
    return DEFAULT_SCHEDULE if value is None else value


class SourceSpec(Settings):
    """One input source: a folder of files of one format, with defaults for what the files do not say."""

    name: Name
    format: Literal["dicom", "nifti", "msd", "image_folder", "coco", "captions"]
    path: ConfigPath  # the source's root folder (or file), relative to the YAML
    labels: ConfigPath | None = None  # nifti: label maps with the same file names
    labels_csv: ConfigPath | None = None  # image_folder/nifti: CSV with a `filename` column
    label_names: Annotated[dict[int, str], BeforeValidator(_label_names)] = Field(default_factory=dict)
    modality: Text | None = None
    organ: Text | None = None
    disease: Text | None = None
    roi: Literal["ground_truth", "expert", "none"] = "ground_truth"
    licence: Text = Field("unknown", validation_alias=AliasChoices("licence", "license"))
    citation: Text | None = None  # how to cite the source (the dataset card lists it beside the licence)
    schedule: Annotated[Cron, BeforeValidator(_default_schedule)] = DEFAULT_SCHEDULE
    options: SourceOptions = Field(default_factory=SourceOptions)
    expert_masks: ExpertMasks | None = None  # roi: expert -- precomputed per-volume masks as one more expert
    # folders that links inside the source folder may point into (a shared data store); the
    # top-level allow_links_into applies to every source as well
    allow_links_into: tuple[ConfigPath, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _entry_is_a_mapping(cls, data: Any) -> Any:
        if not isinstance(data, (dict, SourceSpec)):
            raise problem(f"expected a mapping with name/format/path, got {type(data).__name__}")
        return data

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, value: Any) -> Any:
        return {} if value is None else value


def _salt(value: Any) -> Any:
    value = value if value is not None else os.environ.get("MEDTRINITY_SALT")
    if value is not None and not isinstance(value, str):
        raise problem(f"expected text, got {value!r}")
    return value or None


class PipelineConfig(Settings):
    """The whole sources YAML. ``config_path`` is the file it was read from (not a YAML key)."""

    config_path: Path = Field(default=Path("sources.yaml"), exclude=True)
    data_root: ConfigPath = Path("out")  # where every output goes
    shards: int_at_least(1) = 4  # samples are sharded by a salted hash of their subject key
    salt: Annotated[str | None, BeforeValidator(_salt)] = Field(None, validate_default=True)  # else $MEDTRINITY_SALT
    max_side: int_at_least(16) = 512  # longest side of the stored PNG slices
    context_slices: int_at_least(0) = 3  # evenly spaced context slices per volume
    min_component_pixels: int_at_least(1) = 9  # smaller connected components are not ROIs
    models: ConfigPath | None = None  # expert-model registry (ROI stage)
    eval_hashes: ConfigPath | None = None  # perceptual hashes of evaluation-set images (leakage check)
    allow_links_into: tuple[ConfigPath, ...] = ()  # shared stores that links in every source may point into
    sources: tuple[SourceSpec, ...]
    ingest: IngestSection = Field(default_factory=IngestSection)
    rois: RoisSection = Field(default_factory=RoisSection)
    knowledge: KnowledgeSection = Field(default_factory=KnowledgeSection)
    generator: GeneratorSection = Field(default_factory=GeneratorSection)
    quality: QualitySection = Field(default_factory=QualitySection)
    exports: ExportsSection = Field(default_factory=ExportsSection)

    @field_validator("ingest", "rois", "knowledge", "generator", "quality", "exports", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        return {} if value is None else value  # `generator:` with nothing under it

    @field_validator("sources", mode="before")
    @classmethod
    def _sources_listed(cls, value: Any) -> Any:
        if value is None:
            raise problem("empty: list at least one source (name, format, path)")
        if not isinstance(value, list):
            raise problem("expected a list of source entries (- name: ..., format: ..., path: ...)")
        return value

    @field_validator("sources")
    @classmethod
    def _sources_named_once(cls, value: tuple[SourceSpec, ...]) -> tuple[SourceSpec, ...]:
        if not value:
            raise problem("empty: list at least one source (name, format, path)")
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise problem(f"duplicate source name(s) {dupes}")
        return value

    @model_validator(mode="after")
    def _shared_link_roots(self) -> PipelineConfig:
        if self.allow_links_into:
            shared = tuple(self.allow_links_into)
            sources = tuple(
                s.model_copy(update={"allow_links_into": tuple(dict.fromkeys((*s.allow_links_into, *shared)))})
                for s in self.sources
            )
            object.__setattr__(self, "sources", sources)
        return self

    # --- reading it ------------------------------------------------------------------------------

    @property
    def models_file(self) -> Path | None:
        return self.models

    @property
    def corpora(self) -> tuple[CorpusSpec, ...]:
        return self.knowledge.corpora

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
