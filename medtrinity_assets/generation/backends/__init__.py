"""One interface for every description generator, and the factory that picks one from configuration.

A backend turns a batch of :class:`PromptRequest` into one :class:`GenerationResult` per request, in
order, status ``ok`` or ``failed`` with a reason; it never raises for a single bad sample.

Configuration (the ``generator:`` section of the sources YAML)::

    generator:
      backend: grounded | openai | transformers
      seed: 0                     # grounded: phrasing variation
      prompt: description_v2      # template under generation/prompts/
      # openai
      model: gpt-4o | Qwen/Qwen2-VL-7B-Instruct | llava:13b ...
      base_url: http://127.0.0.1:8000/v1
      api_key_env: OPENAI_API_KEY # name of the env var holding the key (none for local servers)
      concurrency: 8
      timeout_s: 120
      max_retries: 4
      backoff_s: 1.0
      max_tokens: 800
      temperature: 0.2
      response_format: json_object | json_schema | none
      # transformers
      model_dir: /models/llava-med
      device: cpu | cuda | cuda:1
      batch_size: 4
      max_new_tokens: 512
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from medtrinity_assets.generation.results import GenerationResult, PromptRequest

if TYPE_CHECKING:  # the typed ``generator`` section; read by attribute, never imported at run time
    from medtrinity_assets.config.sections import GeneratorSection

BACKENDS = ("grounded", "openai", "transformers")


class Backend(Protocol):
    name: str
    model: str
    version: str
    needs_image: bool  # whether requests must carry the image bytes
    # (optional) needs_prompt: bool = True -- False lets the runner skip rendering the prompt text

    def generate(self, batch: list[PromptRequest]) -> list[GenerationResult]: ...

    def close(self) -> None: ...


def generator_identity(backend: Backend) -> dict[str, str]:
    return {"backend": backend.name, "model": backend.model, "version": backend.version}


def generator_id(backend: Backend, prompt_sha256: str) -> str:
    """Stable id of (backend, model, version, prompt): when it changes, triplets are stale."""
    raw = f"{backend.name}|{backend.model}|{backend.version}|{prompt_sha256}"
    return f"{backend.name}:{backend.model}@{backend.version}/prompt:{prompt_sha256[:12]}/{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def set_fields(settings: GeneratorSection, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields of ``names`` the section sets (not None), as keyword arguments: a field left unset takes
    the backend constructor's own default, so each backend default is written once, in its constructor."""
    return {name: getattr(settings, name) for name in names if getattr(settings, name) is not None}


def make_backend(settings: GeneratorSection, cache_dir: Path | None = None) -> Backend:
    """Build the backend the typed ``generator`` section names (``settings.backend``)."""
    name = settings.backend
    if name == "grounded":
        from medtrinity_assets.generation.backends.grounded import GroundedBackend

        return GroundedBackend(seed=settings.seed)
    if name == "openai":
        from medtrinity_assets.generation.backends.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend.from_settings(settings, cache_dir=cache_dir)
    if name == "transformers":
        from medtrinity_assets.generation.backends.hf_local import TransformersBackend

        return TransformersBackend.from_settings(settings)
    raise ValueError(f"generator.backend {name!r} is not one of {', '.join(BACKENDS)} (set it in the 'generator:' section of the sources YAML)")
