"""Built-in experts: classical intensity and shape rules per modality, each with a stated scope.

Every expert reads one image (physical values, mm per pixel, orientation, metadata organ) and returns
a :class:`Reading`: labelled masks on the image grid, the body region it measured (if any), image-level
measurements, and a note when it declined ("not a chest radiograph"). No weights: the digest of an
expert's module is its version, so editing a rule is a model update.

- ``ct``: body, lungs, bone, fat, air; liver/kidneys on abdominal slices; the slice's body region.
- ``chest_xray``: lung fields, heart/mediastinum and the cardiothoracic ratio on frontal radiographs.
- ``brain``: brain mask, hemispheres (patient left/right), ventricles/CSF on head CT and brain MR.
- ``field_of_view``: the imaged area (ultrasound sector, tissue, fundus disc) and annotation overlays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medtrinity_assets.roi.body_region import RegionCall


@dataclass
class ExpertInput:
    """One image as an expert sees it."""

    values: np.ndarray  # float32 (H, W): physical values (HU for CT) or grey levels (luminance of RGB)
    modality: str = ""
    organ: str = ""  # the metadata's organ / body part ('' when none)
    px_mm: float = 1.0  # mm per image pixel (1.0 when unknown: see spacing_known)
    spacing_known: bool = False
    physical: bool = True  # values are physical units (HU for CT) -- False for grey levels read from a PNG
    col_toward: str = ""  # patient direction of increasing column (L R A P S I, '' unknown)
    row_toward: str = ""
    rgb: np.ndarray | None = None  # uint8 (H, W, 3) for colour images, else None


@dataclass
class Reading:
    """What a built-in expert says about one image."""

    masks: dict[str, np.ndarray] = field(default_factory=dict)  # label -> bool mask on the image grid
    kinds: dict[str, str] = field(default_factory=dict)  # label -> anatomy | finding (default anatomy)
    region: RegionCall | None = None
    measurements: dict[str, float] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)  # label -> per-image confidence when the expert has one
    note: str = ""  # why the expert found nothing, or what it could not tell
