"""The pipeline's configuration: one YAML file lists the sources, the knowledge corpora and the knobs.

Typed models (pydantic, as Dagster's own ``Config``): :mod:`.model` (top level, sources, options),
:mod:`.sections` (ingest, rois, knowledge, generator, quality, exports), :mod:`.models_file` (the
expert-model registry), :mod:`.load` (reading and checking what the file points at) and
:mod:`.errors` (one-line messages naming the file, the entry and the field).
"""

from medtrinity_assets.config.errors import ConfigError
from medtrinity_assets.config.load import (
    DEFAULT_CONFIG_ENV,
    check_paths,
    check_source,
    default_config_path,
    load_config,
    read_config,
    source_path_problem,
)
from medtrinity_assets.config.model import (
    DEFAULT_SCHEDULE,
    FORMATS,
    ROI_MODES,
    PipelineConfig,
    SourceOptions,
    SourceSpec,
)
from medtrinity_assets.config.sections import (
    CORPUS_FORMATS,
    CorpusSpec,
    ExportsSection,
    GeneratorSection,
    IngestSection,
    KnowledgeSection,
    QualitySection,
    RoisSection,
)

__all__ = [
    "CORPUS_FORMATS",
    "DEFAULT_CONFIG_ENV",
    "DEFAULT_SCHEDULE",
    "FORMATS",
    "ROI_MODES",
    "ConfigError",
    "CorpusSpec",
    "ExportsSection",
    "GeneratorSection",
    "IngestSection",
    "KnowledgeSection",
    "PipelineConfig",
    "QualitySection",
    "RoisSection",
    "SourceOptions",
    "SourceSpec",
    "check_paths",
    "check_source",
    "default_config_path",
    "load_config",
    "read_config",
    "source_path_problem",
]
