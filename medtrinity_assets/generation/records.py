"""The generation stage's records: the facts a description may use, requests, results, and the triplet table.

Facts are plain dataclasses so the composer and the prompt builder run on dicts from any source
(pipeline tables, the phantom's truth, a test); ``inputs.py`` turns table rows into them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medtrinity_assets.tables import ATTRIBUTES  # noqa: F401 (re-exported for the backends)

STATUS_OK = "ok"
STATUS_FAILED = "failed"


@dataclass(frozen=True)
class ImageFacts:
    """What the image table knows about one sample (no pixels)."""

    sample_id: str
    source: str = ""
    modality: str = ""  # CT | MR | CR | DX | US | MG | FUNDUS | HISTO | DERM | OT ...
    organ: str = ""
    disease: str = ""
    labels: tuple[str, ...] = ()
    axis: str = ""  # axial | none
    window: str = ""  # e.g. ct:abdomen(40/400)
    caption_in: str = ""  # caption shipped with the source, if any
    image_path: str = ""
    image_sha256: str = ""
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class RoiFacts:
    """The deterministic facts of one region of interest (see roi/records.py); '' means unknown."""

    roi_id: str
    label: str
    origin: str = "ground_truth"
    role: str = "finding"  # finding | anatomy (anatomy ROIs are reference regions, not abnormalities)
    bbox: tuple[float, float, float, float] | None = None  # normalised x0, y0, x1, y1
    area_fraction: float | None = None
    side: str = ""  # left | right | midline | '' (unknown: no side words are written)
    vertical: str = ""  # upper | middle | lower
    ap_position: str = ""  # anterior | central | posterior
    region: str = ""  # organ or region that contains/touches it
    size_class: str = ""  # small | medium | large
    intensity: str = ""  # e.g. hypodense, hyperintense
    intensity_contrast: float | None = None  # difference against the surroundings, in contrast_unit
    contrast_unit: str = ""  # HU | z ('' = HU for CT, unitless otherwise)
    texture: str = ""  # homogeneous | heterogeneous
    shape: str = ""  # round | oval | lobulated | irregular
    margin: str = ""  # well-defined | ill-defined
    relations: tuple[dict[str, Any], ...] = ()  # [{"type": inside|adjacent|near, "target": str, "distance_mm": float}]


@dataclass(frozen=True)
class Passage:
    passage_id: str
    score: float
    corpus: str = ""
    title: str = ""
    text: str = ""


@dataclass(frozen=True)
class SampleFacts:
    """Everything a description of one image may state."""

    image: ImageFacts
    rois: tuple[RoiFacts, ...] = ()
    passages: tuple[Passage, ...] = ()

    @property
    def sample_id(self) -> str:
        return self.image.sample_id

    @property
    def findings(self) -> tuple[RoiFacts, ...]:
        return tuple(r for r in self.rois if r.role != "anatomy")

    @property
    def anatomy(self) -> tuple[RoiFacts, ...]:
        return tuple(r for r in self.rois if r.role == "anatomy")


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
