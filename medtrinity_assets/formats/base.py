"""What every reader gives the pipeline.

A reader works in two steps so that partitions stay cheap and independent:

1. ``scan(source)`` lists the items in a source folder from headers only (no pixel decoding) and
   yields :class:`ItemRef` (a readable item) or :class:`Quarantined` (an input that cannot be used).
   ``source_manifest`` records these; the subject id decides the item's shard.
2. ``load(source, ref)`` decodes one item into a :class:`ReadItem`: pixels in physical units in a
   canonical orientation, allow-listed metadata, and any ground truth the source ships.

Canonical orientation for anything with known patient geometry (DICOM, NIfTI): arrays are
``(H, W)`` or ``(Z, H, W)`` with columns running toward the patient's Left, rows toward Posterior
(axial) and slices toward Superior -- DICOM's LPS, i.e. the radiological display in which the
patient's right is on the image's left. ``col_toward``/``row_toward`` say what is known; '' means
unknown (a PNG with no orientation), and no side fact is then derived.

Errors: ``load`` raises :class:`ReadError` with an ``error_class`` and a reason a person can act on;
the caller turns it into a quarantine row. A reader never lets one file fail the source.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from medtrinity_assets.config import SourceSpec

# Label values are 0..65535: label slices are stored as 16-bit PNGs. A reader refuses larger ones.
MAX_LABEL_VALUE = 65_535


class ReadError(Exception):
    """An input that cannot be used; becomes a quarantine row."""

    def __init__(self, error_class: str, reason: str):
        super().__init__(f"{error_class}: {reason}")
        self.error_class = error_class
        self.reason = reason


@dataclass
class ItemRef:
    """One readable item found by ``scan``. ``locator`` holds what ``load`` needs (real relative
    paths, frame numbers, CSV row ...) and is kept in memory only: it may hold identifiers.
    ``rel_path`` is already scrubbed for tables and logs."""

    kind: str
    locator: dict[str, Any]
    rel_path: str
    subject_id: str
    study_id: str = ""
    series_id: str = ""
    modality: str | None = None
    n_files: int = 1
    n_frames: int = 1
    identifiers: tuple[str, ...] = ()  # raw identifier values seen in headers (for scrubbing / PHI scan)
    # What scan learnt that load may reuse (e.g. parsed DICOM headers). In memory only, never part
    # of the item's identity (the item key comes from ``locator``), never written to a table.
    hints: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Quarantined:
    """An input that cannot be used (``severity="error"``: left out), or an item kept with a problem a
    person should know about (``"warning"``: e.g. a series with missing slices)."""

    rel_path: str  # scrubbed
    error_class: str
    reason: str
    stage: str = "scan"
    severity: str = "error"


@dataclass
class ReadItem:
    """A decoded item: a 2D image or a 3D volume in canonical orientation."""

    pixels: np.ndarray  # float32 physical units; (H,W), (H,W,3) RGB 0..255, or (Z,H,W)
    modality: str
    spacing: tuple[float, ...]  # mm per axis of ``pixels`` (without the RGB axis); NaN when unknown
    col_toward: str = ""
    row_toward: str = ""
    slice_toward: str = ""
    slice_thickness: float = float("nan")
    meta: dict[str, Any] = field(default_factory=dict)  # allow-listed, JSON-safe
    labels: list[str] = field(default_factory=list)
    caption: str | None = None
    label_map: np.ndarray | None = None  # integer 0..MAX_LABEL_VALUE, same spatial shape as ``pixels``
    label_names: dict[int, str] = field(default_factory=dict)
    boxes: list[dict[str, Any]] = field(default_factory=list)  # {"label": str, "bbox": [x0,y0,x1,y1] pixels}
    burned_in_annotation: bool | None = None
    organ: str | None = None
    disease: str | None = None

    @property
    def is_volume(self) -> bool:
        return self.pixels.ndim == 3 and not (self.pixels.shape[-1] == 3 and self.modality_is_rgb)

    @property
    def modality_is_rgb(self) -> bool:
        return bool(self.meta.get("rgb"))


ScanResult = ItemRef | Quarantined


class Reader(Protocol):
    def scan(self, source: SourceSpec) -> Iterator[ScanResult]: ...

    def load(self, source: SourceSpec, ref: ItemRef) -> ReadItem: ...


def relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:  # a link out of the folder (refused, or allowed by allow_links_into): its own name
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
        return rel if not rel.startswith("..") else path.name


def get_reader(fmt: str) -> Reader:
    """The reader for a source format (imported lazily: each pulls its own libraries)."""
    if fmt == "dicom":
        from medtrinity_assets.formats.dicom import DicomReader

        return DicomReader()
    if fmt == "nifti":
        from medtrinity_assets.formats.nifti import NiftiReader

        return NiftiReader()
    if fmt == "msd":
        from medtrinity_assets.formats.msd import MsdReader

        return MsdReader()
    if fmt == "image_folder":
        from medtrinity_assets.formats.image_folder import ImageFolderReader

        return ImageFolderReader()
    if fmt == "coco":
        from medtrinity_assets.formats.coco import CocoReader

        return CocoReader()
    if fmt == "captions":
        from medtrinity_assets.formats.captions import CaptionsReader

        return CaptionsReader()
    raise ValueError(f"no reader for format {fmt!r}")
