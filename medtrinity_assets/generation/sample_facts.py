"""What a description of one image may state: the image's facts, its ROIs' facts, the retrieved passages.

The ROI facts are the ROI stage's own record (:class:`medtrinity_assets.roi.facts.RoiFacts`), read back
from the ``rois`` table unchanged; ``inputs.py`` assembles one :class:`SampleFacts` per image row.
"""

from __future__ import annotations

from dataclasses import dataclass

from medtrinity_assets.quality.consistency import Facts
from medtrinity_assets.roi.facts import RoiFacts


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
        return tuple(r for r in self.rois if r.is_finding)

    @property
    def anatomy(self) -> tuple[RoiFacts, ...]:
        return tuple(r for r in self.rois if not r.is_finding)

    def scorer_facts(self) -> Facts:
        """These facts as the consistency scorer reads them (the same scorer as the blocking quality gate)."""
        img = self.image
        return Facts(modality=img.modality, organ=img.organ, disease=img.disease, labels=img.labels, rois=self.rois)
