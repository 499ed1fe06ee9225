"""What a description of one image may state: the image's facts, its ROIs' facts, the retrieved passages.

The ROI facts are the ROI stage's own record (:class:`medtrinity_assets.roi.facts.RoiFacts`), read back
from the ``rois`` table unchanged; ``inputs.py`` assembles one :class:`SampleFacts` per image row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medtrinity_assets.quality.consistency import Facts
from medtrinity_assets.roi.facts import RoiFacts


@dataclass(frozen=True)
class ImageFacts:
    """What the image table (and the per-image facts of the ROI stage) know about one sample (no pixels)."""

    sample_id: str
    source: str = ""
    modality: str = ""  # CT | MR | CR | DX | US | MG | FUNDUS | HISTO | DERM | OT ...
    organ: str = ""  # from the source's configuration or header (metadata)
    disease: str = ""
    labels: tuple[str, ...] = ()
    axis: str = ""  # axial | none
    window: str = ""  # e.g. ct:abdomen(40/400)
    caption_in: str = ""  # caption shipped with the source, if any
    image_path: str = ""
    image_sha256: str = ""
    width: int = 0
    height: int = 0
    pixel_spacing: tuple[float, float] | None = None  # (row_mm, col_mm) on the image grid; None unknown
    slice_index: int = -1  # -1 for 2D inputs
    acquisition: tuple[tuple[str, Any], ...] = ()  # allow-listed header facts (ViewPosition, EchoTime ...)
    # what the slice itself shows (the ROI stage's image_facts row), the metadata being only a fallback
    body_region: str = ""  # e.g. chest | abdomen; '' unknown
    body_region_detail: str = ""  # e.g. lower chest
    body_region_origin: str = ""  # expert:<name>@<version> | anatomy | metadata | ''
    agrees_with_metadata: bool | None = None  # body region vs the metadata organ; None when either is unknown
    visible_organs: tuple[str, ...] = ()
    measurements: tuple[tuple[str, Any], ...] = ()  # image-level measurements (cardiothoracic_ratio ...)

    def acq(self, key: str, default: Any = None) -> Any:
        return dict(self.acquisition).get(key, default)

    def measurement(self, key: str) -> Any:
        return dict(self.measurements).get(key)


@dataclass(frozen=True)
class Passage:
    passage_id: str
    score: float
    corpus: str = ""
    title: str = ""
    text: str = ""
    meta: tuple[tuple[str, Any], ...] = ()  # the document's facts (core corpus: organ, appearance, differential)

    @property
    def facts(self) -> dict[str, Any]:
        return dict(self.meta)


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
        return tuple(r for r in self.rois if r.is_finding)

    @property
    def anatomy(self) -> tuple[RoiFacts, ...]:
        return tuple(r for r in self.rois if not r.is_finding)

    def scorer_facts(self) -> Facts:
        """These facts as the consistency scorer reads them (the same scorer as the blocking quality gate)."""
        img = self.image
        return Facts(modality=img.modality, organ=img.organ, disease=img.disease, labels=img.labels, rois=self.rois,
                     body_region=img.body_region_detail or img.body_region, laterality=image_laterality(img))


def image_laterality(image: ImageFacts) -> str:
    """left | right from the header's laterality (a radiograph of one hand), else ''."""
    raw = str(image.acq("Laterality") or image.acq("ImageLaterality") or "").strip().upper()
    return {"L": "left", "R": "right"}.get(raw, "")
