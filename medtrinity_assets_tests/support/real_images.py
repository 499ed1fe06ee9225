"""Real images that ship inside installed packages, turned into ``images`` rows exactly as ingest makes them.

Each helper copies a packaged file into a temporary source folder, runs the project's own reader
(``scan`` + ``load``) and preprocessing (``item_to_slices``), so an expert test sees the same values,
grid, spacing and orientation the ROI stage sees in a real run.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medtrinity_assets.config import SourceSpec


@dataclass
class RealSlice:
    name: str
    values: np.ndarray | None  # physical values on the image grid (None for RGB)
    image: np.ndarray  # uint8 grey or RGB, what the PNG holds
    modality: str
    organ: str
    spacing: tuple[float, float]  # (row_mm, col_mm) on the image grid, NaN when unknown
    col_toward: str
    row_toward: str
    slice_index: int
    n_slices: int
    orig_size: tuple[int, int]

    @property
    def px_mm(self) -> float:
        sp = [s for s in self.spacing if np.isfinite(s) and s > 0]
        return float(np.mean(sp)) if sp else 1.0

    def row(self, sample_id: str = "s") -> dict:
        """A minimal ``images`` row (the fields experts read)."""
        h, w = self.image.shape[:2]
        return {"sample_id": sample_id, "modality": self.modality, "organ": self.organ, "width": w, "height": h,
                "orig_width": self.orig_size[1], "orig_height": self.orig_size[0], "pixel_spacing": list(self.spacing),
                "col_toward": self.col_toward, "row_toward": self.row_toward, "slice_index": self.slice_index}


def _ingest(folder: Path, fmt: str, max_side: int, context_slices: int, **spec) -> list[RealSlice]:
    from medtrinity_assets.formats.base import ItemRef, get_reader
    from medtrinity_assets.preprocess.item_images import item_to_slices

    src = SourceSpec(name="real", format=fmt, path=folder, **spec)
    reader = get_reader(fmt)
    out: list[RealSlice] = []
    for ref in reader.scan(src):
        if not isinstance(ref, ItemRef):
            raise AssertionError(f"{folder}: the reader quarantined a packaged file: {ref}")
        item = reader.load(src, ref)
        modality = (item.modality or ref.modality or spec.get("modality") or "OT").upper()
        organ = item.organ or spec.get("organ") or str(item.meta.get("body_part") or "").lower()
        for s in item_to_slices(item, max_side=max_side, context_slices=context_slices, organ=organ):
            out.append(RealSlice(ref.rel_path, s.values, s.image, modality, organ or "", s.spacing, item.col_toward,
                                 item.row_toward, s.slice_index, s.n_slices, s.orig_size))
    return out


def dicom_slices(name: str, tmp: Path, max_side: int = 512, context_slices: int = 3) -> list[RealSlice]:
    """A pydicom / pydicom-data test file, read by the project's DICOM reader."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        raise FileNotFoundError(f"{name}: not among pydicom's test files (is pydicom-data installed?)")
    folder = tmp / Path(name).stem
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, folder / name)
    return _ingest(folder, "dicom", max_side, context_slices)


def nifti_slices(path: Path, tmp: Path, modality: str, organ: str = "", max_side: int = 512,
                 context_slices: int = 3) -> list[RealSlice]:
    folder = tmp / path.name.split(".")[0]
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, folder / path.name)
    return _ingest(folder, "nifti", max_side, context_slices, modality=modality, organ=organ or None)


def skimage_image(name: str) -> np.ndarray:
    """A scikit-image data image (offline): ``retina``, ``immunohistochemistry`` ..."""
    from skimage import data

    return np.asarray(getattr(data, name)())


def nilearn_mni(kind: str = "t1") -> Path:
    """nilearn's bundled MNI152 2009 template (``t1``, ``gm``, ``wm``, ``csf`` or ``mask`` when shipped)."""
    import nilearn

    folder = Path(nilearn.__file__).parent / "datasets" / "data"
    hits = sorted(folder.glob(f"mni_icbm152_{kind}_tal_nlin_sym_09a*.nii*"))
    if not hits:
        raise FileNotFoundError(f"no MNI152 {kind!r} map in {folder}")
    return hits[0]
