"""A seeded abdominal/chest CT phantom whose ground truth is known exactly.

Every later stage (ROI facts, the lesion model, the descriptions) is measured against this truth, so
the phantom states it explicitly instead of leaving it to be re-derived: each lesion's label value,
organ, patient side, centre, radius, measured HU against its surroundings, texture and size class.

Geometry. Arrays are ``(Z, H, W)`` in the project's canonical LPS order: column index grows toward
the patient's Left, row index toward Posterior, slice index toward Superior. So the liver (patient's
right) lies in the image's LEFT half (low column indices) and the spleen in the right half -- the
radiological display. ``side`` is always in patient terms.

Label values (``LABEL_NAMES``)::

    1 liver   2 spleen   3 kidney (both)   4 lung (both)   5 bone (vertebra)
    10 liver tumour (hypodense, ~20 HU in a 60 HU liver)
    11 liver cyst (hypodense, ~5 HU, homogeneous)
    12 kidney cyst (hypodense, ~5 HU in a 140 HU enhancing kidney)
    13 lung nodule (hyperdense, ~30 HU in -850 HU lung)
    14 spleen lesion (hypodense, ~20 HU in a 50 HU spleen)
    15 hyperdense liver lesion (~90 HU in a 60 HU liver)

A volume carries 1-3 lesions of distinct kinds, so one label value is one lesion.

Classes used in the truth (the ROI stage should apply the same rules):

* intensity: contrast = mean HU inside the lesion - mean HU of the organ in a 2-4 voxel ring
  around it; ``hypodense`` below -10 HU, ``hyperdense`` above +10 HU, else ``isodense``.
* size: by diameter (2 x radius_mm): ``small`` < 10 mm, ``medium`` 10-20 mm, ``large`` >= 20 mm.
* texture: ``heterogeneous`` lesions carry smoothed internal noise of ~25 HU SD, ``homogeneous``
  ones only the global scanner noise (~10 HU SD).
* shape: lesions are spheres in millimetres (``round``).

Everything is drawn from ``numpy.random.default_rng((seed, index))``: same arguments, same bytes.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medtrinity_assets.storage import temp_file_beside

LIVER, SPLEEN, KIDNEY, LUNG, BONE = 1, 2, 3, 4, 5
LIVER_TUMOUR, LIVER_CYST, KIDNEY_CYST, LUNG_NODULE, SPLEEN_LESION, LIVER_HYPERDENSE = 10, 11, 12, 13, 14, 15

ORGAN_LABELS: dict[int, str] = {LIVER: "liver", SPLEEN: "spleen", KIDNEY: "kidney", LUNG: "lung", BONE: "bone"}
LESION_LABELS: dict[int, str] = {
    LIVER_TUMOUR: "liver tumour",
    LIVER_CYST: "liver cyst",
    KIDNEY_CYST: "kidney cyst",
    LUNG_NODULE: "lung nodule",
    SPLEEN_LESION: "spleen lesion",
    LIVER_HYPERDENSE: "hyperdense liver lesion",
}
LABEL_NAMES: dict[int, str] = {**ORGAN_LABELS, **LESION_LABELS}

# Nominal tissue values in HU (portal-venous phase CT).
HU_AIR, HU_FAT, HU_SOFT, HU_LUNG, HU_BONE, HU_MARROW = -1000.0, -100.0, 40.0, -850.0, 700.0, 250.0
ORGAN_HU = {LIVER: 60.0, SPLEEN: 50.0, KIDNEY: 140.0, LUNG: HU_LUNG, BONE: HU_BONE}
NOISE_SD = 10.0


@dataclass(frozen=True)
class LesionKind:
    label: int
    organ_label: int
    hu: float
    radius_mm: tuple[float, float]
    p_heterogeneous: float


LESION_KINDS: tuple[LesionKind, ...] = (
    LesionKind(LIVER_TUMOUR, LIVER, 20.0, (6.0, 13.0), 0.7),
    LesionKind(LIVER_CYST, LIVER, 5.0, (4.0, 10.0), 0.0),
    LesionKind(KIDNEY_CYST, KIDNEY, 5.0, (4.0, 8.0), 0.0),
    LesionKind(LUNG_NODULE, LUNG, 30.0, (3.0, 7.0), 0.3),
    LesionKind(SPLEEN_LESION, SPLEEN, 20.0, (4.0, 8.0), 0.5),
    LesionKind(LIVER_HYPERDENSE, LIVER, 90.0, (5.0, 10.0), 0.3),
)


def intensity_class(contrast_hu: float) -> str:
    if contrast_hu < -10.0:
        return "hypodense"
    if contrast_hu > 10.0:
        return "hyperdense"
    return "isodense"


def size_class(diameter_mm: float) -> str:
    if diameter_mm < 10.0:
        return "small"
    if diameter_mm < 20.0:
        return "medium"
    return "large"


def side_of_column(x: float, width: int) -> str:
    """Patient side of a column in canonical LPS order (columns run toward the patient's Left)."""
    return "right" if x < (width - 1) / 2.0 else "left"


@dataclass
class Phantom:
    seed: int
    index: int
    volume_hu: np.ndarray  # float32 (Z,H,W), canonical LPS
    label_map: np.ndarray  # uint8 (Z,H,W)
    spacing: tuple[float, float, float]  # mm per (z, row, col)
    label_names: dict[int, str] = field(default_factory=lambda: dict(LABEL_NAMES))
    lesions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def subject_id(self) -> str:
        return f"phantom_{self.seed}_{self.index:03d}"

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.volume_hu.shape)  # type: ignore[return-value]

    def lesion_area_px(self, label: int, z: int) -> int:
        """Pixels of lesion ``label`` on slice ``z`` (from the label map)."""
        return int(np.count_nonzero(self.label_map[z] == label))

    def lesion_slices(self, label: int) -> list[int]:
        return [int(z) for z in np.flatnonzero((self.label_map == label).any(axis=(1, 2)))]

    def findings(self) -> str:
        """One line naming every lesion with its side and size, for label CSVs."""
        return "; ".join(
            f"{les['name']} ({les['side']}, {les['diameter_mm']:.0f} mm, {les['intensity']})" for les in self.lesions
        )

    def affine_lps_world(self) -> np.ndarray:
        """Voxel (x=col, y=row, z=slice) -> RAS world mm, for the array stored in canonical order.

        World centre of the volume is at the origin; used by :func:`write_nifti` and DICOM writers."""
        return _affine(self.shape, self.spacing, "LPS")


def _ellipsoid(shape, centre, semi_axes_vox) -> np.ndarray:
    """Boolean ellipsoid via broadcasting (cheap: open grids)."""
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    cz, cy, cx = centre
    az, ay, ax = semi_axes_vox
    return ((zz - cz) / az) ** 2 + ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 <= 1.0


def _place_lesion(
    rng: np.random.Generator,
    label_map: np.ndarray,
    organ_mask: np.ndarray,
    radius_mm: float,
    spacing: tuple[float, float, float],
) -> tuple[tuple[int, int, int], np.ndarray, tuple[slice, slice, slice]] | None:
    """Pick a centre so the whole sphere lies inside ``organ_mask`` and touches no other lesion."""
    cand = np.argwhere(organ_mask)
    if len(cand) == 0:
        return None
    rz, ry, rx = (radius_mm / s for s in spacing)
    hz, hy, hx = int(np.ceil(rz)) + 1, int(np.ceil(ry)) + 1, int(np.ceil(rx)) + 1
    Z, H, W = label_map.shape
    for _ in range(80):
        cz, cy, cx = (int(v) for v in cand[rng.integers(len(cand))])
        if cz - hz < 0 or cy - hy < 0 or cx - hx < 0 or cz + hz >= Z or cy + hy >= H or cx + hx >= W:
            continue
        box = (slice(cz - hz, cz + hz + 1), slice(cy - hy, cy + hy + 1), slice(cx - hx, cx + hx + 1))
        zz, yy, xx = np.ogrid[-hz : hz + 1, -hy : hy + 1, -hx : hx + 1]
        sphere = (zz / rz) ** 2 + (yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0
        # whole sphere plus a one-voxel margin inside the organ, so a ring of organ surrounds it
        grown = ndimage.binary_dilation(sphere)
        if organ_mask[box][grown].all():
            return (cz, cy, cx), sphere, box
    return None


def make_phantom(seed: int, index: int, shape: tuple[int, int, int] = (48, 128, 128)) -> Phantom:
    """Build one phantom volume; deterministic in ``(seed, index)``."""
    rng = np.random.default_rng((seed, index))
    Z, H, W = shape
    spacing = (2.5, 1.5, 1.5)
    vol = np.full(shape, HU_AIR, dtype=np.float32)
    lab = np.zeros(shape, dtype=np.uint8)

    def jit(v: float, frac: float = 0.05) -> float:
        return float(v * (1.0 + rng.uniform(-frac, frac)))

    # Body: elliptic cylinder with a subcutaneous fat ring, soft tissue inside.
    by, bx = jit(0.36 * H), jit(0.45 * W)
    cy0, cx0 = (H - 1) / 2.0 + rng.uniform(-2, 2), (W - 1) / 2.0
    yy, xx = np.ogrid[:H, :W]
    body2d = ((yy - cy0) / by) ** 2 + ((xx - cx0) / bx) ** 2 <= 1.0
    inner2d = ((yy - cy0) / (by - 6)) ** 2 + ((xx - cx0) / (bx - 6)) ** 2 <= 1.0
    vol[:, body2d] = HU_FAT
    vol[:, inner2d] = HU_SOFT

    # Lungs in the upper slices (both sides), then abdominal organs below.
    lung_z0 = int(round(0.68 * Z))
    for side_sign in (-1, 1):
        c = (Z - 1 + 0.25 * Z, cy0 - 0.04 * H, cx0 + side_sign * jit(0.2 * W))
        m = _ellipsoid(shape, c, (Z - lung_z0 + 0.25 * Z, jit(0.24 * H), jit(0.15 * W)))
        m[:lung_z0] = False
        m &= inner2d[None]
        lab[m] = LUNG
    organs = [
        # label, centre (z, y, x), semi-axes (z, y, x) in voxels
        (LIVER, (jit(0.47 * Z), cy0 - 0.04 * H, cx0 - jit(0.18 * W)), (jit(0.17 * Z), jit(0.22 * H), jit(0.17 * W))),
        (SPLEEN, (jit(0.52 * Z), cy0 + 0.06 * H, cx0 + jit(0.25 * W)), (jit(0.11 * Z), jit(0.12 * H), jit(0.08 * W))),
        (KIDNEY, (jit(0.28 * Z), cy0 + 0.15 * H, cx0 - jit(0.19 * W)), (jit(0.13 * Z), jit(0.09 * H), jit(0.06 * W))),
        (KIDNEY, (jit(0.30 * Z), cy0 + 0.15 * H, cx0 + jit(0.19 * W)), (jit(0.13 * Z), jit(0.09 * H), jit(0.06 * W))),
    ]
    for organ, c, ax in organs:
        m = _ellipsoid(shape, c, ax) & inner2d[None]
        m[lung_z0:] = False
        lab[m & (lab == 0)] = organ
    # Vertebral column through every slice: cortical ring + marrow.
    vy, vx, vr = cy0 + 0.22 * H, cx0, 0.055 * W
    d2 = (yy - vy) ** 2 + (xx - vx) ** 2
    bone2d = d2 <= vr**2
    lab[:, bone2d] = BONE
    for organ, hu in ORGAN_HU.items():
        vol[lab == organ] = hu
    vol[:, d2 <= (0.6 * vr) ** 2] = HU_MARROW

    # Lesions: 1-3 of distinct kinds.
    n_lesions = int(rng.integers(1, 4))
    kinds = [LESION_KINDS[i] for i in rng.permutation(len(LESION_KINDS))]
    lesions: list[dict[str, Any]] = []
    placed: list[tuple[LesionKind, tuple[int, int, int], np.ndarray, tuple, bool, float]] = []
    organ_masks = {lbl: lab == lbl for lbl in ORGAN_LABELS}
    for kind in kinds:
        if len(placed) == n_lesions:
            break
        radius = float(np.round(rng.uniform(*kind.radius_mm), 1))
        mask = organ_masks[kind.organ_label] & (lab < 10)
        if kind.organ_label in (KIDNEY, LUNG):  # either side: pick one
            half = np.zeros(W, dtype=bool)
            half[: W // 2] = True
            if rng.random() < 0.5:
                half = ~half
            mask = mask & half[None, None, :]
        spot = _place_lesion(rng, lab, mask, radius, spacing)
        if spot is None:
            continue
        centre, sphere, box = spot
        lab[box][sphere] = kind.label
        heterogeneous = bool(rng.random() < kind.p_heterogeneous)
        placed.append((kind, centre, sphere, box, heterogeneous, radius))

    # Scanner noise (slightly correlated in-plane), then lesion intensities and texture on top.
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise = 0.5 * noise + 0.25 * (np.roll(noise, 1, axis=2) + np.roll(noise, 1, axis=1))
    noise *= NOISE_SD / float(np.sqrt(0.5**2 + 2 * 0.25**2))
    for kind, _centre, sphere, box, heterogeneous, _radius in placed:
        region = vol[box]
        region[sphere] = kind.hu
        if heterogeneous:
            tex = ndimage.gaussian_filter(rng.standard_normal(sphere.shape).astype(np.float32), sigma=1.0)
            tex -= float(tex[sphere].mean())
            tex *= 25.0 / max(float(tex[sphere].std()), 1e-6)
            region[sphere] += tex[sphere]
    vol += noise

    for kind, centre, _sphere, _box, heterogeneous, radius in placed:
        les_mask = lab == kind.label
        ring = ndimage.binary_dilation(les_mask, iterations=4) & ~ndimage.binary_dilation(les_mask, iterations=1)
        ring &= lab == kind.organ_label
        mean_hu = float(vol[les_mask].mean())
        background = float(vol[ring].mean()) if ring.any() else ORGAN_HU[kind.organ_label]
        per_slice = np.count_nonzero(les_mask, axis=(1, 2))
        zs = np.flatnonzero(per_slice)
        ys, xs = np.nonzero(les_mask.any(axis=0))
        diameter = 2.0 * radius
        lesions.append(
            {
                "label": kind.label,
                "name": LABEL_NAMES[kind.label],
                "organ": ORGAN_LABELS[kind.organ_label],
                "organ_label": kind.organ_label,
                "side": side_of_column(centre[2], W),
                "centre_voxel": [int(c) for c in centre],
                "radius_mm": radius,
                "diameter_mm": diameter,
                "nominal_hu": kind.hu,
                "mean_hu": round(mean_hu, 2),
                "background_hu": round(background, 2),
                "contrast_hu": round(mean_hu - background, 2),
                "intensity": intensity_class(mean_hu - background),
                "texture": "heterogeneous" if heterogeneous else "homogeneous",
                "size_class": size_class(diameter),
                "shape": "round",
                "slices": [int(z) for z in zs],
                "slice_areas_px": {int(z): int(per_slice[z]) for z in zs},
                "max_area_px": int(per_slice.max()),
                "max_area_mm2": float(per_slice.max() * spacing[1] * spacing[2]),
                "volume_ml": float(les_mask.sum() * np.prod(spacing) / 1000.0),
                "bbox_voxel": [int(zs[0]), int(ys.min()), int(xs.min()), int(zs[-1]), int(ys.max()), int(xs.max())],
            }
        )
    lesions.sort(key=lambda d: d["label"])
    return Phantom(seed, index, vol.astype(np.float32, copy=False), lab, spacing, dict(LABEL_NAMES), lesions)


def lesion_training_volume(seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """The demo's training data for the lesion segmenter (``rois.lesion_model.data`` in data/sources.yaml):
    phantom ``(seed, index)`` in HU and its lesion mask (every lesion label). Synthetic, and said so."""
    ph = make_phantom(seed, index)
    return ph.volume_hu, ph.label_map >= min(LESION_LABELS)


# ---------------------------------------------------------------- NIfTI writing (both on-disk orientations)


def _affine(shape: tuple[int, int, int], spacing: tuple[float, float, float], orientation: str) -> np.ndarray:
    """RAS-world affine for the array written as (i=col, j=row, k=slice).

    ``LPS``: i toward Left, j toward Posterior (canonical order, no flips). ``RAS``: columns and
    rows flipped. Both place every voxel at the same world position, so a reader that makes arrays
    canonical gets identical data back from either file."""
    Z, H, W = shape
    sz, sy, sx = spacing
    # world (RAS mm) of canonical voxel (col=0,row=0,slice=0): patient's right-anterior-inferior corner
    origin = np.array([sx * (W - 1) / 2.0, sy * (H - 1) / 2.0, -sz * (Z - 1) / 2.0])
    aff = np.eye(4)
    if orientation == "LPS":
        aff[:3, :3] = np.diag([-sx, -sy, sz])
        aff[:3, 3] = origin
    elif orientation == "RAS":
        aff[:3, :3] = np.diag([sx, sy, sz])
        aff[:3, 3] = origin + np.array([-sx * (W - 1), -sy * (H - 1), 0.0])
    else:
        raise ValueError(f"orientation must be 'LPS' or 'RAS', got {orientation!r}")
    return aff


def _to_disk(array_zhw: np.ndarray, orientation: str) -> np.ndarray:
    ijk = np.transpose(array_zhw, (2, 1, 0))  # (col, row, slice)
    if orientation == "RAS":
        ijk = ijk[::-1, ::-1, :]
    return np.ascontiguousarray(ijk)


def _write_image(data: np.ndarray, affine: np.ndarray, path: Path, *, intent_label: bool) -> Path:
    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    if intent_label:
        img.header.set_intent("label")
    raw = img.to_bytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        raw = gzip.compress(raw, compresslevel=6, mtime=0)  # mtime=0: same bytes on every rebuild
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_nifti(phantom: Phantom, path: Path | str, *, orientation: str = "LPS", dtype: str = "int16") -> Path:
    """Write the HU volume as NIfTI (``.nii`` or ``.nii.gz``) stored in ``orientation`` ('LPS' or 'RAS').

    HU are rounded to int16 by default, as scanners store them; pass ``dtype='float32'`` to keep them."""
    data = phantom.volume_hu
    if dtype == "int16":
        data = np.clip(np.rint(data), -32768, 32767).astype(np.int16)
    else:
        data = data.astype(dtype)
    return _write_image(_to_disk(data, orientation), _affine(phantom.shape, phantom.spacing, orientation), Path(path), intent_label=False)


def write_label_nifti(phantom: Phantom, path: Path | str, *, orientation: str = "LPS") -> Path:
    """Write the uint8 label map with the same affine as :func:`write_nifti` for that orientation."""
    data = _to_disk(phantom.label_map.astype(np.uint8), orientation)
    return _write_image(data, _affine(phantom.shape, phantom.spacing, orientation), Path(path), intent_label=True)
