"""Whole volumes for volume-level experts (MONAI bundles, precomputed masks), and their output sliced like our images.

Why the volume is read from the source and not reassembled from the ``images`` table: ingest keeps only
some slices of a volume (those holding ground truth plus a few context slices) and stores each on a
resized grid, so the rows of one volume are neither every slice nor the acquisition's grid. A 3D model
must see the acquisition as its authors trained it (their own orientation, spacing and intensity
transforms), so the source is scanned again with the project's reader (headers only, as ``images``
does) and the item is found by its ``item_key``: a NIfTI/MSD item is handed to the bundle as its own
file; any other volume (a DICOM series) is decoded by the reader and written as a temporary NIfTI in
the reader's canonical orientation with its spacing.

Back to our images: a volume-level label map is read in the same canonical (Z, H, W) orientation the
reader gives, then each image row takes slice ``slice_index`` resized to the row's grid with the same
``resize_labels`` ingest used for ground truth -- the same path a label file shipped with the source
takes, so an expert's mask lands on exactly the pixels a radiologist's would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medtrinity_assets.preprocess.resize import resize_labels


class VolumeError(ValueError):
    """A volume-level input that cannot be used for this volume (missing, misaligned, unreadable)."""

    def __init__(self, error_class: str, reason: str):
        super().__init__(f"{error_class}: {reason}")
        self.error_class = error_class
        self.reason = reason


@dataclass
class VolumeRef:
    """One source volume the partition's image rows came from."""

    item_key: str
    format: str
    source_root: Path
    locator: dict[str, Any]  # the reader's locator (real relative paths: kept in memory, never stored)
    series_id: str = ""
    rel_path: str = ""  # scrubbed, for messages and quarantine rows

    @property
    def nifti_file(self) -> Path | None:
        """The item's own NIfTI file (nifti / msd sources), else None."""
        from medtrinity_assets.formats import safety

        if self.format in ("nifti", "msd") and self.locator.get("image"):
            return safety.inside_root(self.source_root, self.locator["image"])
        return None


class SourceVolumes:
    """The volumes of one source, found by ``item_key`` (a header scan, done once, on first use)."""

    def __init__(self, source, salt: str, shards: int):
        self.source = source
        self.salt = salt
        self.shards = shards
        self._refs: dict[str, Any] | None = None

    def _scan(self) -> dict[str, Any]:
        if self._refs is None:
            from medtrinity_assets.ingest import scan_source

            self._refs = {s.item_key: s for s in scan_source(self.source, salt=self.salt, shards=self.shards).items}
        return self._refs

    def get(self, item_key: str) -> VolumeRef:
        scanned = self._scan().get(item_key)
        if scanned is None:
            raise VolumeError("volume_missing", "the volume is no longer in the source folder (rescan and rerun ingest)")
        ref = scanned.ref
        return VolumeRef(item_key, self.source.format, Path(self.source.path), dict(ref.locator), ref.series_id or "",
                         ref.rel_path)

    def load(self, volume: VolumeRef):
        """The decoded volume (a ReadItem in canonical orientation), as ingest decoded it."""
        from medtrinity_assets.formats.base import ItemRef, get_reader

        ref = ItemRef(kind=self.source.format, locator=volume.locator, rel_path=volume.rel_path, subject_id="")
        return get_reader(self.source.format).load(self.source, ref)

    def as_nifti(self, volume: VolumeRef, work: Path) -> Path:
        """A NIfTI file of the volume: its own file when it is one, else the decoded volume written in the
        reader's canonical LPS orientation with its spacing (origin zero; geometry enough for a model)."""
        own = volume.nifti_file
        if own is not None:
            return own
        item = self.load(volume)
        return write_canonical_nifti(np.asarray(item.pixels, np.float32), item.spacing, work / "volume.nii.gz")


def write_canonical_nifti(zhw: np.ndarray, spacing, path: Path) -> Path:
    """(Z, H, W) canonical LPS values -> a NIfTI whose array axes are (W=L, H=P, Z=S) with the spacing."""
    import nibabel as nib

    sp = [float(s) if s and math.isfinite(float(s)) and float(s) > 0 else 1.0 for s in (list(spacing) + [1.0] * 3)[:3]]
    z_mm, row_mm, col_mm = sp
    affine = np.diag([-col_mm, -row_mm, z_mm, 1.0])  # +i toward patient Left, +j toward Posterior, +k Superior (RAS+ world)
    img = nib.Nifti1Image(np.ascontiguousarray(np.transpose(zhw, (2, 1, 0))), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def read_label_volume(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A label NIfTI in the reader's canonical (Z, H, W) order, and its (z, row, col) spacing."""
    from medtrinity_assets.formats.nifti import load_canonical

    arr, spacing, _meta = load_canonical(Path(path), labels=True, what="label map")
    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.allclose(arr, np.rint(arr)):
            raise VolumeError("mask_not_labels", f"{Path(path).name}: holds non-integer values; expected a label map")
        arr = np.rint(arr).astype(np.int32)
    return arr, spacing


def check_alignment(labels: np.ndarray, spacing, rows: list[dict[str, Any]], what: str) -> None:
    """A volume-level label map must have the volume's canonical shape (slices x original rows x columns, as
    the image rows record it) and, where both are known, its spacing."""
    row = rows[0]
    want = (int(row.get("n_slices") or 0), int(row.get("orig_height") or 0), int(row.get("orig_width") or 0))
    if tuple(labels.shape) != want:
        raise VolumeError("mask_misaligned", f"{what} has shape {tuple(labels.shape)} (slices, rows, columns) but the "
                                             f"volume has {want}; produce it on the image's own grid")
    px = row.get("pixel_spacing") or []
    w, ow = row.get("width") or 0, row.get("orig_width") or 0
    if len(px) >= 2 and ow and all(p is not None and math.isfinite(p) for p in px[:2]):
        native = (float(px[0]) * (row.get("height") or 0) / max(row.get("orig_height") or 1, 1), float(px[1]) * w / ow)
        got = (float(spacing[1]), float(spacing[2]))
        if all(math.isfinite(g) for g in got) and not np.allclose(native, got, rtol=0.02, atol=0.01):
            raise VolumeError("mask_misaligned", f"{what} has pixel spacing {got[0]:.3f} x {got[1]:.3f} mm but the "
                                                 f"volume has {native[0]:.3f} x {native[1]:.3f} mm")


def slice_like_image(labels: np.ndarray, row: dict[str, Any]) -> np.ndarray:
    """Slice ``slice_index`` of a canonical (Z, H, W) label volume on the image row's grid (ingest's resize)."""
    z = int(row["slice_index"])
    lab = labels[z]
    h, w = int(row["height"]), int(row["width"])
    return lab if lab.shape == (h, w) else resize_labels(lab, (h, w))
