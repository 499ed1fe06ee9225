"""The typed sections of the sources YAML: ``ingest``, ``rois``, ``knowledge``, ``generator``, ``quality``, ``exports``.

Each section is a model with its defaults; a stage reads ``cfg.<section>.<field>``. Where a domain
module already declares its knobs (``roi.facts.Thresholds``, ``roi.lesion_model.TrainSettings``,
``knowledge.settings.KnowledgeSettings``) the section embeds that declaration instead of repeating it,
so every default lives in one place. To add a knob: add a field here (with its default and a comment
saying what it does), read it where it is used, and describe it in the README's configuration section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from medtrinity_assets.config.errors import problem
from medtrinity_assets.config.fields import (
    ConfigPath,
    Name,
    NonBlank,
    Settings,
    Text,
    int_at_least,
    keys_of,
    number_at_least,
)
from medtrinity_assets.generation.prompt import DEFAULT_PROMPT, PROMPTS_DIR
from medtrinity_assets.knowledge.settings import KnowledgeSettings
from medtrinity_assets.quality.phi_pixels import DEFAULT_SAMPLE
from medtrinity_assets.roi.facts import Thresholds
from medtrinity_assets.roi.lesion_model import TrainSettings

CORPUS_FORMATS = ("core", "medrag", "jsonl", "markdown")
BACKENDS = ("grounded", "openai", "transformers")
BACKEND_ALIASES = {"openai_compat": "openai", "hf_local": "transformers"}
LABEL_KINDS = ("anatomy", "finding")


class IngestSection(Settings):
    workers: int_at_least(1) | None = None  # threads per partition; None -> min(4, cores)
    ocr_engine: Literal["rapidocr", "tesseract"] = "rapidocr"  # reads burned-in text (deid.ocr); also the export pixel check


def _index_range(value: Any) -> Any:
    """``{start: a, stop: b}`` is shorthand for the list ``a .. b-1`` (phantom volume indices)."""
    if isinstance(value, dict):
        if set(value) != {"start", "stop"} or not all(isinstance(v, int) for v in value.values()):
            raise problem(f"expected a list of integers or {{start: a, stop: b}}, got {value!r}")
        return tuple(range(value["start"], value["stop"]))
    return value


def _lesion_settings(value: Any) -> Any:
    if isinstance(value, dict):
        value = {k: _index_range(v) if k in ("train_indices", "eval_indices") else v for k, v in value.items()}
    return value


class RoisSection(Settings):
    min_component_pixels: int_at_least(1) | None = None  # overrides the top-level min_component_pixels
    thresholds: Annotated[Thresholds, keys_of(Thresholds)] = Field(default_factory=Thresholds)
    label_kinds: dict[str, Literal["anatomy", "finding"]] = Field(default_factory=dict)
    lesion_model: Annotated[TrainSettings, keys_of(TrainSettings), BeforeValidator(_lesion_settings)] = Field(
        default_factory=TrainSettings
    )

    @field_validator("label_kinds", mode="before")
    @classmethod
    def _lower_labels(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k).lower(): v for k, v in value.items()}
        return value


class CorpusSpec(Settings):
    """One knowledge corpus: the bundled core corpus, a MedRAG JSONL file/folder, or plain JSONL/Markdown."""

    name: Name
    format: Literal["core", "medrag", "jsonl", "markdown"] = "medrag"
    path: ConfigPath


def bundled_corpora() -> tuple[CorpusSpec, ...]:
    """What an omitted ``knowledge:`` section (or ``corpora:`` list) means: the bundled core corpus."""
    from medtrinity_assets.knowledge.corpus import bundled_core_path

    return (CorpusSpec(name="core", format="core", path=bundled_core_path()),)


def _encoder_path(value: Any, info: ValidationInfo) -> Any:
    """A local encoder folder is relative to the YAML, like every other path; '' is the bundled model."""
    from medtrinity_assets.knowledge.embedding import BUNDLED_NAME

    if value is None:
        return ""
    if not isinstance(value, str):
        raise problem(f"expected a folder path, got {value!r}")
    base = (info.context or {}).get("base")
    if not value or value == BUNDLED_NAME or base is None:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (Path(base) / path).resolve())


class KnowledgeSection(Settings, KnowledgeSettings):
    corpora: tuple[CorpusSpec, ...] = Field(default_factory=bundled_corpora)
    encoder: Annotated[str, BeforeValidator(_encoder_path)] = ""

    @field_validator("corpora")
    @classmethod
    def _named_once(cls, value: tuple[CorpusSpec, ...]) -> tuple[CorpusSpec, ...]:
        if not value:
            raise problem("empty: list at least one corpus, or leave 'knowledge.corpora' out for the bundled core corpus")
        names = [c.name for c in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise problem(f"duplicate corpus name(s) {dupes}")
        return value


def _backend(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().lower()
        return BACKEND_ALIASES.get(value, value)
    return value


def _prompt(value: Any) -> Any:
    if not isinstance(value, str):
        raise problem(f"expected a prompt template name, got {value!r}")
    if not (PROMPTS_DIR / f"{value}.txt").is_file() or not (PROMPTS_DIR / f"{value}.schema.json").is_file():
        known = sorted(p.stem for p in PROMPTS_DIR.glob("*.txt"))
        raise problem(f"{value!r} is not a prompt template; known: {', '.join(known)}")
    return value


class GeneratorSection(Settings):
    """The description generator. Fields left out (None) take the chosen backend's own default."""

    backend: Annotated[Literal["grounded", "openai", "transformers"], BeforeValidator(_backend)] = "grounded"
    prompt: Annotated[str, BeforeValidator(_prompt)] = DEFAULT_PROMPT  # template under generation/prompts/
    top_k_passages: int_at_least(0) = 3  # passages per sample in the prompt
    chunk_size: int_at_least(1) = 256  # samples per backend call (bounds memory for image bytes)
    check_facts: bool | None = None  # reject a description that contradicts the facts
    send_overlay: bool | None = None  # send the ROI overlay picture with the prompt
    # grounded
    seed: int | Text = 0  # phrasing variation, deterministic per (seed, sample)
    # openai (any chat-completions server: vLLM, SGLang, Ollama, a hosted API)
    model: NonBlank | None = None
    base_url: NonBlank | None = None
    api_key_env: NonBlank | None = None  # name of the environment variable holding the key
    concurrency: int_at_least(1) | None = None
    timeout_s: number_at_least(0, above=True) | None = None
    max_retries: int_at_least(0) | None = None
    backoff_s: number_at_least(0) | None = None
    max_backoff_s: number_at_least(0) | None = None
    max_tokens: int_at_least(1) | None = None
    temperature: number_at_least(0) | None = None
    response_format: Literal["json_object", "json_schema", "none"] | None = None
    cache_dir: ConfigPath | None = None  # default <data_root>/cache/generation
    # transformers (a saved Hugging Face model folder)
    model_dir: ConfigPath | None = None
    device: NonBlank | None = None  # cpu | cuda | cuda:1
    batch_size: int_at_least(1) | None = None
    max_new_tokens: int_at_least(1) | None = None
    dtype: NonBlank | None = None

    @model_validator(mode="after")
    def _backend_needs(self) -> GeneratorSection:
        if self.backend == "openai":
            missing = [k for k in ("model", "base_url") if not getattr(self, k)]
            if missing:
                raise problem(f"backend 'openai' needs {' and '.join(missing)} "
                              "(the model name the server serves and its /v1 URL)")
        if self.backend == "transformers" and self.model_dir is None:
            raise problem("backend 'transformers' needs model_dir (a saved Hugging Face model folder)")
        return self


def _pixel_sample(value: Any) -> Any:
    if value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    hint = " (0 no longer means every image: write all)" if value == 0 else ""
    raise problem(f"expected 'all' or an integer >= 1 (images not at risk read per export shard), got {value!r}{hint}")


PixelSample = Annotated[int | Literal["all"], BeforeValidator(_pixel_sample)]


class QualitySection(Settings):
    max_contradiction_rate: number_at_least(0) = 0.05  # exports are blocked above this share of contradicted triplets
    dedup_hamming: int_at_least(0) = 4  # perceptual-hash distance at or below which two images are near duplicates
    dedup_max_pixel_mad: number_at_least(0, optional=True) = 0.005  # ... and their 32x32 thumbnails differ this
    # little (mean absolute difference, 0..1 grey); null trusts the hash alone
    dedup_ignore_same_volume: bool = True  # neighbouring slices of one volume are not duplicates
    leakage_hamming: int_at_least(0) = 4  # distance to an evaluation-set hash at or below which an image leaks
    phi_identifiers_file: ConfigPath | None = None  # extra identifiers (one per line) the PHI scan looks for
    phi_pixel_check: bool = True  # the export PHI checks also OCR exported images (quality.phi_pixels)
    # images not at risk read per export shard (every image at risk is read): n -> a seeded sample, the
    # miss-rate bound (~3/n at 95 %) in the check's metadata; all -> every image
    phi_pixel_sample: PixelSample = DEFAULT_SAMPLE


class ExportsSection(Settings):
    """Export knobs."""

    title: NonBlank = "MedTrinity-style image-ROI-description dataset"  # the dataset card's title (Hub pretty_name)


SECTIONS = ("ingest", "rois", "knowledge", "generator", "quality", "exports")
