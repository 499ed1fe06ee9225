"""What a backend is asked (a rendered prompt) and what it answers (attributes + paragraph, or why not)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medtrinity_assets.generation.sample_facts import SampleFacts

STATUS_OK = "ok"
STATUS_FAILED = "failed"


@dataclass(frozen=True)
class PromptRequest:
    """One rendered prompt; images are PNG bytes kept in memory (the overlay is never written to disk)."""

    sample_id: str
    facts: SampleFacts
    system: str
    user: str
    prompt_sha256: str  # of the template (+ answer schema): the prompt *version*
    request_sha256: str  # of this rendered prompt: part of the response-cache key
    image_png: bytes | None = None
    overlay_png: bytes | None = None
    image_sha256: str = ""


@dataclass
class GenerationResult:
    sample_id: str
    status: str  # ok | failed
    reason: str = ""
    description: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    clauses: list[dict[str, str]] = field(default_factory=list)  # [{"field", "text", "source"}]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    attempts: int = 0
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


def failed(sample_id: str, reason: str, **kw: Any) -> GenerationResult:
    return GenerationResult(sample_id=sample_id, status=STATUS_FAILED, reason=reason, **kw)
