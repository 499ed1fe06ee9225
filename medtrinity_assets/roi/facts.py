"""Geometry and intensities of one ROI turned into facts: fields, never prose.

Pure numpy/scipy/scikit-image. The generation stage words these fields; nothing here guesses.

Conventions
- Masks are bool ``(H, W)`` on the image grid; ``values`` are physical units (HU for CT) or grey.
- ``col_toward``/``row_toward`` name the patient direction of increasing column/row (``L`` means
  the patient's left is toward high x, the radiological display). The side of a ROI comes from
  these, so a lesion in the patient's left is "left" whichever way the volume was stored.
- Sizes use the pixel spacing when it is known (mm), else the fraction of the image.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
from scipy import ndimage

from medtrinity_assets.tables import ROI_SCHEMA

SIDES = ("left", "right", "midline", "unknown")
SIZE_CLASSES = ("small", "medium", "large", "very_large")
# absolute CT attenuation classes (calibrated CT only): upper bound of each band in HU. Aerated lung
# (about -850 HU) reads as air; ground glass is the partly aerated band (-700..-250); contrast-enhanced
# soft tissue reaches about 200 HU (an enhancing kidney is ~140-180), so calcification starts at 200 HU.
ATTENUATION_CLASSES: tuple[tuple[str, float], ...] = (
    ("air", -700.0), ("ground_glass", -250.0), ("fat", -30.0), ("fluid", 20.0), ("soft_tissue", 200.0),
    ("calcified", math.inf),
)
# value units: what a pixel value means, which decides which words and measures a description may use
HU, SIGNAL, GREY = "HU", "signal", "grey"


def value_unit_of(modality: str, window: str, has_values: bool) -> str:
    """HU for calibrated CT (its values look like HU: the ingest chose a CT window preset), signal for MR
    values read from the scanner file, grey for everything else (8-bit images, photographs, US, X-ray)."""
    m = (modality or "").upper()
    if m == "CT" and (window or "").startswith("ct:"):
        return HU
    if m in ("MR", "MRI") and has_values and not (window or "") == "rgb":
        return SIGNAL
    return GREY


def attenuation_class(mean_hu: float) -> str:
    for name, upper in ATTENUATION_CLASSES:
        if mean_hu < upper:
            return name
    return ATTENUATION_CLASSES[-1][0]


# ---- the record ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OtherLesion:
    """Another finding of the same image (same origin): its id, label, side and centroid distance."""

    roi_id: str
    label: str
    side: str | None
    distance: float  # centroid to centroid, in the relations' ``distance_unit``


@dataclass(frozen=True)
class Relation:
    """One statement a description may make about where a ROI lies relative to something else."""

    type: str  # inside | overlaps | adjacent | near
    target: str  # an organ name, or the roi_id of another finding
    distance_mm: float | None = None


@dataclass(frozen=True)
class Relations:
    """How a ROI sits among the reference organs and the other findings (``relations_json`` in the table)."""

    inside: tuple[str, ...] = ()  # organs holding at least half of it
    overlaps: tuple[str, ...] = ()  # organs holding part of it
    adjacent: tuple[str, ...] = ()  # organs within ``Thresholds.adjacent_mm`` of it
    nearest_organ: str | None = None
    distance_to_organ_edge_mm: float | None = None  # to the nearest organ's edge, in ``distance_unit``
    distance_unit: str = "mm"  # mm | px (spacing unknown)
    # findings only (None on anatomy ROIs): the other findings of the image, nearest first
    other_lesions: tuple[OtherLesion, ...] | None = None
    multiple_lesions: bool | None = None
    n_lesions: int | None = None

    def to_json(self) -> str:
        d: dict[str, Any] = {
            "inside": list(self.inside), "overlaps": list(self.overlaps), "adjacent": list(self.adjacent),
            "nearest_organ": self.nearest_organ, "distance_to_organ_edge_mm": self.distance_to_organ_edge_mm,
            "distance_unit": self.distance_unit,
        }
        if self.other_lesions is not None:
            d["other_lesions"] = [o.__dict__ for o in self.other_lesions]
            d["multiple_lesions"] = self.multiple_lesions
            d["n_lesions"] = self.n_lesions
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | Mapping[str, Any] | None) -> Relations:
        if not raw:
            return cls()
        d = json.loads(raw) if isinstance(raw, str) else dict(raw)
        others = d.get("other_lesions")
        return cls(
            inside=tuple(d.get("inside") or ()), overlaps=tuple(d.get("overlaps") or ()),
            adjacent=tuple(d.get("adjacent") or ()), nearest_organ=d.get("nearest_organ"),
            distance_to_organ_edge_mm=d.get("distance_to_organ_edge_mm"), distance_unit=d.get("distance_unit") or "mm",
            other_lesions=None if others is None else tuple(OtherLesion(**o) for o in others),
            multiple_lesions=d.get("multiple_lesions"), n_lesions=d.get("n_lesions"),
        )

    def statements(self) -> tuple[Relation, ...]:
        """What may be said: containing / overlapping / adjacent organs, the nearest other organ (with its
        distance when in mm), the other findings (by roi_id, with their distance when in mm). The body
        outline is a reference, never a relation worth stating."""
        in_mm = self.distance_unit == "mm"
        out = [Relation(kind, t) for kind, targets in (("inside", self.inside), ("overlaps", self.overlaps),
                                                       ("adjacent", self.adjacent)) for t in targets if t and t != "body"]
        named = {r.target for r in out}
        if self.nearest_organ and self.nearest_organ not in named and self.nearest_organ != "body":
            dist = self.distance_to_organ_edge_mm if in_mm else None
            out.append(Relation("near", self.nearest_organ, dist))
        for o in self.other_lesions or ():
            out.append(Relation("near", o.roi_id or o.label, o.distance if in_mm else None))
        return tuple(out)

    def organs(self) -> tuple[str, ...]:
        """Every organ or other finding's label these relations name."""
        names = [*self.inside, *self.overlaps, *self.adjacent, *([self.nearest_organ] if self.nearest_organ else [])]
        return tuple(names + [o.label for o in self.other_lesions or ()])


@dataclass(frozen=True)
class RoiFacts:
    """The facts of one region of interest: one row of the ``rois`` table without its mask and bookkeeping.

    :func:`describe` measures it, the ROI stage stores it (:meth:`to_row`), generation and the consistency
    scorer read it back (:meth:`from_row`). Values are the table's codes (``very_large``, ``well_defined``,
    ``unknown``); wording them is the vocabulary's job. Fields mirror ``ROI_SCHEMA`` (checked at import).
    """

    label: str = ""
    kind: str = "finding"  # finding | anatomy (anatomy ROIs are reference regions, not abnormalities)
    origin: str = ""  # ground_truth | expert:<name>@<version>
    roi_id: str = ""
    confidence: float | None = None
    component: int | None = None
    n_components: int | None = None
    bbox: tuple[float, float, float, float] | None = None  # normalised x0, y0, x1, y1
    area_pixels: int | None = None
    area_fraction: float | None = None
    area_mm2: float | None = None
    centroid: tuple[float, float] | None = None  # normalised x, y
    side: str = "unknown"  # left | right | midline | unknown (patient side)
    vertical_position: str = ""  # upper | middle | lower; superior | middle | inferior when rows run head-foot
    ap_position: str = "unknown"  # anterior | central | posterior | unknown
    region: str = ""  # reference organ that contains or touches it; '' none
    size_class: str = ""  # small | medium | large | very_large
    equivalent_diameter_mm: float | None = None
    long_axis_mm: float | None = None  # longest in-plane diameter; None when the spacing is unknown
    short_axis_mm: float | None = None  # the diameter perpendicular to it
    intensity: str = ""  # hyper/hypo/isodense (CT), -intense (MR), -echoic (US), brighter/darker/similar (others)
    contrast: float | None = None  # against the surrounding ring, in contrast_unit
    contrast_unit: str = ""  # HU (calibrated CT) | z (contrast over the surrounding tissue's noise)
    mean_value: float | None = None  # in value_unit
    surround_value: float | None = None  # mean of the surrounding ring, in value_unit
    value_unit: str = ""  # HU | signal | grey (see ``value_unit_of``)
    attenuation: str = ""  # calibrated CT only: absolute class of mean_value (ATTENUATION_CLASSES), else ''
    texture: str = ""  # homogeneous | heterogeneous
    texture_score: float | None = None
    glcm_homogeneity: float | None = None
    shape: str = ""  # round | oval | lobulated | irregular
    circularity: float | None = None
    solidity: float | None = None
    margin: str = ""  # well_defined | ill_defined
    edge_sharpness: float | None = None
    relations: Relations = field(default_factory=Relations)

    @property
    def is_finding(self) -> bool:
        return self.kind != "anatomy"

    def to_row(self) -> dict[str, Any]:
        """The ``rois`` table columns this record fills (NaN stored as null)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "relations":
                out["relations_json"] = v.to_json()
            elif isinstance(v, tuple):
                out[f.name] = list(v)
            else:
                out[f.name] = None if isinstance(v, float) and not math.isfinite(v) else v
        return out

    def compact(self) -> dict[str, Any]:
        """:meth:`to_row` without empty values (what a triplet stores in ``rois_json``)."""
        return {k: v for k, v in self.to_row().items() if v not in (None, "", [])}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RoiFacts:
        """A ``rois`` table row (or a triplet's compact copy of one) back to the record."""
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "relations":
                kw["relations"] = Relations.from_json(row.get("relations_json"))
                continue
            v = row.get(f.name)
            if v is None:
                continue
            if f.name in ("bbox", "centroid"):
                v = tuple(float(x) for x in v)
            kw[f.name] = v
        return cls(**kw)


# columns of a ROI row that are not facts: where it belongs, its mask, and whether it could be measured
ROW_ONLY_COLUMNS = ("sample_id", "source", "shard", "model_sha256", "mask_rle", "status", "error")


def _check_record_matches_schema() -> None:
    record = {f.name for f in fields(RoiFacts)} - {"relations"} | {"relations_json"}
    table = set(ROI_SCHEMA.names) - set(ROW_ONLY_COLUMNS)
    if record != table:
        raise RuntimeError(f"RoiFacts and ROI_SCHEMA disagree: only in the record {sorted(record - table)}, "
                           f"only in the table {sorted(table - record)}")


_check_record_matches_schema()


@dataclass(frozen=True)
class Thresholds:
    """Cut-offs of every class; override any of them from the config's ``rois.thresholds``."""

    midline_band: float = 0.03  # |offset from body centre| / body width below which a ROI is midline
    ap_band: float = 0.12  # same for anterior/central/posterior, on the body height
    ct_contrast_hu: float = 10.0  # |HU difference| at or above which CT is hyper-/hypodense
    z_contrast: float = 1.0  # |z| at or above which MR is hyper-/hypointense (others brighter/darker)
    size_mm: tuple[float, float, float] = (10.0, 20.0, 50.0)  # equivalent diameter cut-offs
    size_fraction: tuple[float, float, float] = (0.005, 0.03, 0.10)  # area-fraction cut-offs, spacing unknown
    texture_ratio: float = 1.6  # std inside / image noise above which a ROI is heterogeneous
    round_axis_ratio: float = 1.3  # major/minor axis below which a regular ROI is round, else oval
    lobulated_solidity: float = 0.93  # solidity below which a ROI is lobulated
    lobulated_convexity: float = 0.96  # hull perimeter / perimeter below which a ROI is lobulated
    irregular_solidity: float = 0.80  # solidity below which (or circularity < irregular_circularity) irregular
    irregular_circularity: float = 0.5
    min_shape_pixels: int = 60  # below this many original pixels a ROI is only round or oval
    margin_sharpness: float = 0.22  # boundary gradient / |contrast| at or above which the margin is well defined
    margin_min_cnr: float = 1.5  # |contrast| / noise below which no margin can be well defined
    adjacent_mm: float = 3.0  # gap up to which an organ is "adjacent" (pixels when the spacing is unknown)


def estimate_noise(values: np.ndarray, where: np.ndarray | None = None) -> float:
    """Robust noise sigma: MAD of the residual after a 3x3 median filter (inside ``where``).

    The residual is taken at every second pixel of every second row inside ``where``'s bounding box
    (a quarter of the pixels, the same statistic): nine shifted views and one median along them
    instead of a median filter over the whole image."""
    v = np.asarray(values, dtype=np.float32)
    h, w = v.shape
    if where is not None and where.any():
        rows, cols = np.flatnonzero(where.any(axis=1)), np.flatnonzero(where.any(axis=0))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    else:
        where, r0, r1, c0, c1 = None, 0, h, 0, w
    padded = np.pad(v[max(r0 - 1, 0) : min(r1 + 1, h), max(c0 - 1, 0) : min(c1 + 1, w)],
                    ((int(r0 == 0), int(r1 == h)), (int(c0 == 0), int(c1 == w))), mode="edge")
    centre = padded[1:-1:2, 1:-1:2]
    views = [padded[1 + dy : padded.shape[0] - 1 + dy : 2, 1 + dx : padded.shape[1] - 1 + dx : 2]
             for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    resid = centre - np.median(np.stack(views), axis=0)
    sel = resid[where[r0:r1:2, c0:c1:2]] if where is not None else resid.ravel()
    if sel.size == 0:
        sel = resid.ravel()
    sigma = 1.4826 * float(np.median(np.abs(sel - np.median(sel)))) if sel.size else 0.0
    lo, hi = np.percentile(v, [1, 99]) if v.size else (0.0, 1.0)
    return max(sigma, 1e-3 * float(hi - lo), 1e-6)


def _outer_edge(mask: np.ndarray) -> np.ndarray:
    """Pixels outside ``mask`` that touch it (8-neighbourhood), computed on its bounding box."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    out = np.zeros(mask.shape, bool)
    if not rows.size:
        return out
    h, w = mask.shape
    win = (slice(max(rows[0] - 1, 0), min(rows[-1] + 2, h)), slice(max(cols[0] - 1, 0), min(cols[-1] + 2, w)))
    m = mask[win]
    out[win] = ndimage.binary_dilation(m, structure=np.ones((3, 3), bool)) & ~m
    return out


@dataclass
class ImageContext:
    """Everything about one image that several ROIs share: computed once per image."""

    values: np.ndarray  # float (H, W)
    modality: str
    spacing: tuple[float, float] = (float("nan"), float("nan"))  # (row_mm, col_mm)
    col_toward: str = ""
    row_toward: str = ""
    references: dict[str, np.ndarray] = field(default_factory=dict)  # anatomy: name -> bool mask
    native_scale: float = 1.0  # image pixels per pixel of the original acquisition (PNG upsampling)
    thresholds: Thresholds = field(default_factory=Thresholds)
    value_unit: str = ""  # HU | signal | grey; '' = decided from the modality (HU for CT, signal for MR)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        if self.values.ndim != 2:
            raise ValueError(f"facts need a 2D value image, got shape {self.values.shape}")
        for name, m in self.references.items():
            if m.shape != self.values.shape:
                raise ValueError(f"reference region {name!r} has shape {m.shape}, image is {self.values.shape}")
        if not self.value_unit:
            m = (self.modality or "").upper()
            self.value_unit = HU if m == "CT" else SIGNAL if m in ("MR", "MRI") else GREY

    @property
    def calibrated(self) -> bool:
        """Values are Hounsfield units: absolute statements (HU, attenuation class) are allowed."""
        return self.value_unit == HU

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape  # type: ignore[return-value]

    @property
    def has_spacing(self) -> bool:
        return all(math.isfinite(s) and s > 0 for s in self.spacing)

    @property
    def pixel_mm(self) -> tuple[float, float]:
        return self.spacing if self.has_spacing else (1.0, 1.0)

    @property
    def body(self) -> np.ndarray | None:
        return self.references.get("body")

    @property
    def noise(self) -> float:
        if "noise" not in self._cache:
            self._cache["noise"] = estimate_noise(self.values, self.body)
        return self._cache["noise"]

    @property
    def gradient(self) -> np.ndarray:
        """Gradient magnitude per ORIGINAL pixel of the image smoothed by one original pixel.

        Measured on the acquisition's own grid so that upsampling for the PNG does not make every
        edge look soft."""
        if "grad" not in self._cache:
            self._cache["grad"] = self.gradient_in((slice(0, self.shape[0]), slice(0, self.shape[1])))
        return self._cache["grad"]

    def gradient_in(self, win: tuple[slice, slice]) -> np.ndarray:
        """:attr:`gradient` over the window ``win`` only: the same values (the smoothing reaches
        ``4 sigma + 1`` pixels, so the window is padded by that much and cropped back), at the cost
        of the window instead of the whole image."""
        if "grad" in self._cache:
            return self._cache["grad"][win]
        s = max(self.native_scale, 1.0)
        pad = int(4.0 * s + 0.5) + 2
        h, w = self.shape
        r0, r1 = max(win[0].start - pad, 0), min(win[0].stop + pad, h)
        c0, c1 = max(win[1].start - pad, 0), min(win[1].stop + pad, w)
        smooth = ndimage.gaussian_filter(self.values[r0:r1, c0:c1], s)
        gy, gx = np.gradient(smooth)
        grad = np.hypot(gx, gy) * s
        return grad[win[0].start - r0 : win[0].stop - r0, win[1].start - c0 : win[1].stop - c0]

    def _edge_tree(self, key: str, pts: np.ndarray):
        """A KD-tree over pixel coordinates in mm (cached by ``key``), or None when there are none."""
        if key not in self._cache:
            from scipy.spatial import cKDTree

            ys, xs = np.nonzero(pts)
            row_mm, col_mm = self.pixel_mm
            self._cache[key] = cKDTree(np.column_stack([ys * row_mm, xs * col_mm])) if ys.size else None
        return self._cache[key]

    def _query(self, tree, pts: np.ndarray, offset: tuple[int, int] = (0, 0)) -> float:
        ys, xs = np.nonzero(pts)
        row_mm, col_mm = self.pixel_mm
        return float(tree.query(np.column_stack([(ys + offset[0]) * row_mm, (xs + offset[1]) * col_mm]), k=1)[0].min())

    def min_distance_inside(self, name: str, where: np.ndarray, offset: tuple[int, int] = (0, 0)) -> float:
        """min over ``where`` (pixels inside organ ``name``; a crop starting at ``offset`` or the whole image) of
        the distance (mm) to the organ's edge: what ``distance_transform_edt(organ)[where].min()`` gives, from a
        KD-tree over the pixels just outside the organ (the nearest background pixel always touches the organ)
        instead of a whole-image transform."""
        organ = self.references[name]
        tree = self._edge_tree(f"in-tree:{name}", _outer_edge(organ))
        if tree is None:  # the organ fills the image: no edge inside it
            full = np.zeros(self.shape, bool)
            full[offset[0] : offset[0] + where.shape[0], offset[1] : offset[1] + where.shape[1]] = where
            return float(self.distance_inside(name)[full].min())
        return self._query(tree, where, offset)

    def min_distance_outside(self, name: str, mask: np.ndarray, offset: tuple[int, int] = (0, 0)) -> float:
        """min over ``mask`` (a region outside organ ``name``; a crop starting at ``offset`` or the whole image)
        of the distance (mm) to the organ, as ``distance_transform_edt(~organ)[mask].min()``: the nearest organ
        pixel is an edge pixel of the organ, and the nearest mask pixel one of the mask's edge pixels."""
        organ = self.references[name]
        tree = self._edge_tree(f"out-tree:{name}", organ & ~ndimage.binary_erosion(organ, structure=np.ones((3, 3), bool)))
        if tree is None:
            return math.inf
        edge = mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=1)
        return self._query(tree, edge if edge.any() else mask, offset)

    def distance_inside(self, name: str) -> np.ndarray:
        """Distance (mm) from each pixel inside organ ``name`` to its edge (0 outside)."""
        key = f"in:{name}"
        if key not in self._cache:
            self._cache[key] = ndimage.distance_transform_edt(self.references[name], sampling=self.pixel_mm)
        return self._cache[key]

    def distance_outside(self, name: str) -> np.ndarray:
        """Distance (mm) from each pixel outside organ ``name`` to the organ (0 inside)."""
        key = f"out:{name}"
        if key not in self._cache:
            self._cache[key] = ndimage.distance_transform_edt(~self.references[name], sampling=self.pixel_mm)
        return self._cache[key]

    def frame(self) -> tuple[float, float, float, float]:
        """(x_centre, y_centre, width, height) of the body, or of the whole image without a body mask."""
        if "frame" not in self._cache:
            h, w = self.shape
            body = self.body
            if body is not None and body.any():
                rows, cols = np.flatnonzero(body.any(axis=1)), np.flatnonzero(body.any(axis=0))
                x0, x1, y0, y1 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
                self._cache["frame"] = ((x0 + x1) / 2, (y0 + y1) / 2, float(x1 - x0), float(y1 - y0))
            else:
                self._cache["frame"] = (w / 2, h / 2, float(w), float(h))
        return self._cache["frame"]


def _along(direction: str, axis_toward: str, offset: float, band: float, labels: tuple[str, str, str]) -> str:
    """Class of a signed offset along an axis whose increasing end points toward ``axis_toward``."""
    neg_dir, mid, pos_dir = labels  # e.g. ("right", "midline", "left") for directions R / L
    if abs(offset) < band:
        return mid
    high_end = pos_dir if axis_toward == direction else neg_dir
    low_end = neg_dir if axis_toward == direction else pos_dir
    return high_end if offset > 0 else low_end


def patient_side(cx: float, cy: float, ctx: ImageContext) -> str:
    """left | right | midline | unknown, from the axis that runs left-right in the patient."""
    fx, fy, fw, fh = ctx.frame()
    band = ctx.thresholds.midline_band
    if ctx.col_toward in ("L", "R"):
        return _along("L", ctx.col_toward, (cx - fx) / fw, band, ("right", "midline", "left"))
    if ctx.row_toward in ("L", "R"):
        return _along("L", ctx.row_toward, (cy - fy) / fh, band, ("right", "midline", "left"))
    return "unknown"


def ap_position(cx: float, cy: float, ctx: ImageContext) -> str:
    """anterior | central | posterior | unknown, from the axis that runs front-back."""
    fx, fy, fw, fh = ctx.frame()
    band = ctx.thresholds.ap_band
    if ctx.row_toward in ("A", "P"):
        return _along("P", ctx.row_toward, (cy - fy) / fh, band, ("anterior", "central", "posterior"))
    if ctx.col_toward in ("A", "P"):
        return _along("P", ctx.col_toward, (cx - fx) / fw, band, ("anterior", "central", "posterior"))
    return "unknown"


def vertical_position(cy: float, ctx: ImageContext) -> str:
    """Thirds of the image height; superior/inferior when the rows run head-foot (coronal, sagittal, X-ray)."""
    h = ctx.shape[0]
    third = min(int(3 * cy / h), 2)
    if ctx.row_toward in ("S", "I"):
        names = ("superior", "middle", "inferior") if ctx.row_toward == "I" else ("inferior", "middle", "superior")
        return names[third]
    return ("upper", "middle", "lower")[third]


def size_class(diameter_mm: float | None, area_fraction: float, th: Thresholds) -> str:
    cuts, x = (th.size_mm, diameter_mm) if diameter_mm is not None else (th.size_fraction, area_fraction)
    for name, cut in zip(SIZE_CLASSES, cuts):
        if x < cut:
            return name
    return SIZE_CLASSES[-1]


def _ring(mask: np.ndarray, width: int, gap: int, ctx: ImageContext, organ: str | None,
          exclude: np.ndarray | None, win: tuple[slice, slice]) -> np.ndarray:
    """Surrounding tissue: a band ``gap``..``gap+width`` pixels around the ROI (skipping the
    partial-volume edge), kept inside its organ (or the body) when that leaves enough pixels."""
    inner = ndimage.binary_dilation(mask, iterations=gap) if gap > 0 else mask
    ring = ndimage.binary_dilation(inner, iterations=width) & ~inner
    if exclude is not None:
        ring &= ~exclude
    for limit in (ctx.references.get(organ) if organ else None, ctx.body):
        if limit is not None and (ring & limit[win]).sum() >= 10:
            ring &= limit[win]
            break
    return ring


_RELATIVE_NAMES = {  # modality -> (brighter, darker, similar) class names
    "CT": ("hyperdense", "hypodense", "isodense"),
    "MR": ("hyperintense", "hypointense", "isointense"), "MRI": ("hyperintense", "hypointense", "isointense"),
    "US": ("hyperechoic", "hypoechoic", "isoechoic"),
}


def intensity_class(contrast: float, modality: str, th: Thresholds, calibrated: bool | None = None) -> tuple[str, str]:
    """(class, unit) of a contrast: an HU difference for calibrated CT, else a z-score (contrast over the
    surrounding tissue's noise) worded for the modality -- dense (CT shown from 8-bit), intense (MR),
    echoic (US), brighter/darker/similar (X-ray, photographs, slides)."""
    m = (modality or "").upper()
    hu = calibrated if calibrated is not None else m == "CT"
    names = _RELATIVE_NAMES.get(m, ("brighter", "darker", "similar"))
    cut, unit = (th.ct_contrast_hu, "HU") if hu else (th.z_contrast, "z")
    if contrast >= cut:
        return names[0], unit
    if contrast <= -cut:
        return names[1], unit
    return names[2], unit


def principal_axes_mm(mask: np.ndarray, spacing: tuple[float, float]) -> tuple[float, float]:
    """(long, short) axis in mm: the major and minor diameters of the ellipse with the mask's second
    moments, measured in physical coordinates (anisotropic pixels included). A filled disc of diameter
    d gives (d, d); each pixel is spread over its own area, so a few-pixel ROI is not measured as a point."""
    ys, xs = np.nonzero(mask)
    pts = np.stack([ys * spacing[0], xs * spacing[1]])
    cov = np.cov(pts) if ys.size > 1 else np.zeros((2, 2))
    cov = cov + np.diag([spacing[0] ** 2 / 12.0, spacing[1] ** 2 / 12.0])  # a pixel is a square, not a point
    lo, hi = np.linalg.eigvalsh(cov)
    return 4.0 * math.sqrt(max(hi, 0.0)), 4.0 * math.sqrt(max(lo, 0.0))


def _glcm_homogeneity(values: np.ndarray, mask: np.ndarray, levels: int = 16) -> float | None:
    """GLCM homogeneity of the ROI (grey levels over the ROI's 1-99 % range; outside pixels ignored)."""
    from skimage.feature import graycomatrix, graycoprops

    ys, xs = np.nonzero(mask)
    if ys.size < 9:
        return None
    crop_v = values[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    crop_m = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    lo, hi = np.percentile(crop_v[crop_m], [1, 99])
    q = np.zeros(crop_v.shape, np.uint8)
    q[crop_m] = 1 + np.clip((crop_v[crop_m] - lo) / max(hi - lo, 1e-6) * (levels - 1), 0, levels - 1).astype(np.uint8)
    glcm = graycomatrix(q, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=levels + 1)
    glcm = glcm[1:, 1:, :, :].astype(np.float64)  # drop pairs that involve outside pixels
    total = glcm.sum(axis=(0, 1), keepdims=True)
    if not np.all(total > 0):
        return None
    return float(graycoprops((glcm / total), "homogeneity").mean())


def _outline(mask: np.ndarray, smooth: float) -> np.ndarray | None:
    """Sub-pixel outline (N, 2) of the largest contour of the lightly smoothed mask, or None."""
    from skimage.measure import find_contours

    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = np.pad(mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32), 2)
    if smooth > 0:
        crop = ndimage.gaussian_filter(crop, smooth)
    contours = find_contours(crop, 0.5)
    if not contours:
        return None
    return max(contours, key=len)


def _axis_lengths(mask: np.ndarray) -> tuple[float, float]:
    """Major and minor axis lengths of the ellipse with the mask's second moments (scikit-image's
    ``regionprops`` definition: 4 sqrt of the eigenvalues of the pixel coordinates' covariance)."""
    ys, xs = np.nonzero(mask)
    if ys.size < 2:
        return 0.0, 0.0
    ys = ys - ys.mean()
    xs = xs - xs.mean()
    cov = np.array([[np.mean(ys * ys), np.mean(ys * xs)], [np.mean(ys * xs), np.mean(xs * xs)]])
    lo, hi = np.linalg.eigvalsh(cov)
    return 4.0 * math.sqrt(max(hi, 0.0)), 4.0 * math.sqrt(max(lo, 0.0))


def shape_class(mask: np.ndarray, th: Thresholds, native_scale: float = 1.0) -> tuple[str, float, float]:
    """(round | oval | lobulated | irregular, circularity, solidity).

    Measured on a sub-pixel outline (marching squares on the mask smoothed by half an original
    pixel) so that pixel staircases do not read as lobulation; solidity against the outline's
    convex hull (scipy), axis ratio from the second moments of the mask."""
    from scipy.spatial import ConvexHull

    outline = _outline(mask, 0.5 * max(native_scale, 1.0))
    major, minor = _axis_lengths(mask)
    ratio = major / max(minor, 1e-6)
    if outline is None or len(outline) < 4:
        return "round", 1.0, 1.0
    x, y = outline[:, 1], outline[:, 0]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    perimeter = float(np.hypot(np.diff(x, append=x[:1]), np.diff(y, append=y[:1])).sum())
    try:
        hull = ConvexHull(outline)
        hull_area, hull_perimeter = float(hull.volume), float(hull.area)  # in 2D: area, perimeter
    except Exception:  # degenerate (collinear) outline: a line-like ROI
        hull_area, hull_perimeter = area, perimeter
    convexity = min(hull_perimeter / max(perimeter, 1e-6), 1.0)
    circularity = min(4 * math.pi * area / max(perimeter, 1e-6) ** 2, 1.0)
    solidity = min(area / max(hull_area, 1e-6), 1.0)
    few_pixels = mask.sum() / max(native_scale, 1.0) ** 2 < th.min_shape_pixels
    if few_pixels:  # a handful of pixels cannot show lobulation: only elongation is measurable
        name = "oval" if ratio >= th.round_axis_ratio else "round"
    elif solidity < th.irregular_solidity or circularity < th.irregular_circularity:
        name = "irregular"
    elif solidity < th.lobulated_solidity or convexity < th.lobulated_convexity:
        name = "lobulated"
    elif ratio >= th.round_axis_ratio:
        name = "oval"
    else:
        name = "round"
    return name, float(circularity), float(solidity)


def organ_relations(mask: np.ndarray, ctx: ImageContext, own_label: str | None = None,
                    box: tuple[slice, slice] | None = None) -> tuple[Relations, str]:
    """Which reference organs contain, overlap or lie next to the ROI, the distance to the nearest edge, and
    the region to name it by (the organ holding most of it, else the nearest adjacent one, else the body).
    ``box``: a window of the image holding the whole ROI (the work is done there)."""
    th = ctx.thresholds
    if box is None:
        box = (slice(0, ctx.shape[0]), slice(0, ctx.shape[1]))
    offset = (box[0].start or 0, box[1].start or 0)
    mask = mask[box]
    area = int(mask.sum())
    inside, overlaps, adjacent = [], [], []
    nearest, nearest_mm, region, best = None, math.inf, "", 0.0
    outside_mm: dict[str, float] = {}
    for name, organ in ctx.references.items():
        if name == own_label or name == "body":
            continue
        organ = organ[box]
        frac = float((mask & organ).sum()) / area
        if frac > 0:
            edge_mm = ctx.min_distance_inside(name, mask & organ, offset) if frac >= 0.5 else 0.0
            (inside if frac >= 0.5 else overlaps).append(name)
            if frac > best:
                best, region = frac, name
        else:
            edge_mm = ctx.min_distance_outside(name, mask, offset)
            outside_mm[name] = edge_mm
            if edge_mm <= th.adjacent_mm + max(ctx.pixel_mm):
                adjacent.append(name)
        if edge_mm < nearest_mm:
            nearest, nearest_mm = name, edge_mm
    if not region and adjacent:
        region = min(adjacent, key=lambda n: outside_mm[n])
    body = ctx.body
    in_body = bool(body is not None and (mask & body[box]).sum() >= 0.5 * area)
    if not region and in_body and own_label != "body":
        region = "body"
    relations = Relations(
        inside=tuple(sorted(inside)), overlaps=tuple(sorted(overlaps)), adjacent=tuple(sorted(adjacent)),
        nearest_organ=nearest, distance_to_organ_edge_mm=None if nearest is None else round(nearest_mm, 2),
        distance_unit="mm" if ctx.has_spacing else "px",
    )
    return relations, region


def _robust_std(x: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(x - np.median(x))))


def _tissue_noise(mask: np.ndarray, win: tuple[slice, slice], ring_v: np.ndarray | None, ctx: ImageContext,
                  region: str, margin: int) -> float:
    """Noise of the tissue around the ROI: robust std over its organ (many pixels, stable), else the ring."""
    organ = ctx.references.get(region) if region and region != "body" else None
    v = ctx.values
    if organ is not None:
        rest = organ.copy()
        rest[win] &= ~ndimage.binary_dilation(mask, iterations=margin)
        if rest.sum() >= 30:
            sd = _robust_std(v[rest])
            if sd > 0:
                return sd
    if ring_v is not None and ring_v.size >= 5:
        sd = _robust_std(ring_v)
        if sd > 0:
            return sd
    return ctx.noise


def describe(mask: np.ndarray, ctx: ImageContext, label: str | None = None, exclude: np.ndarray | None = None) -> RoiFacts:
    """All facts of one ROI (identity fields -- id, kind, origin -- are the caller's). ``exclude`` masks other findings out of the surrounding-tissue ring."""
    if mask.shape != ctx.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the image's {ctx.shape}")
    mask = mask.astype(bool)
    area = int(mask.sum())
    if area == 0:
        raise ValueError("empty mask: no pixel set")
    th = ctx.thresholds
    h, w = ctx.shape
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    ys, xs = np.nonzero(mask[box])
    ys, xs = ys + rows[0], xs + cols[0]
    cx, cy = float(xs.mean()) + 0.5, float(ys.mean()) + 0.5
    row_mm, col_mm = ctx.pixel_mm
    area_mm2 = area * row_mm * col_mm if ctx.has_spacing else None
    diameter = 2 * math.sqrt(area_mm2 / math.pi) if area_mm2 is not None else None
    area_fraction = area / float(h * w)

    rel, region = organ_relations(mask, ctx, own_label=label, box=box)
    s = max(ctx.native_scale, 1.0)
    radius_px = math.sqrt(area / math.pi)
    gap = max(1, round(s))
    width = int(min(max(2 * s, round(0.6 * radius_px)), 4 * s))
    # everything below is local: work in a window around the ROI (whole-image morphology per ROI is slow)
    pad = gap + width + 2
    win = (slice(max(int(ys.min()) - pad, 0), min(int(ys.max()) + 1 + pad, h)),
           slice(max(int(xs.min()) - pad, 0), min(int(xs.max()) + 1 + pad, w)))
    mask = mask[win]
    ring = _ring(mask, width, gap, ctx, region or None, exclude[win] if exclude is not None else None, win)
    v = ctx.values[win]
    # the core leaves out the partial-volume band that resampling smeared over the edge
    core = ndimage.binary_erosion(mask, iterations=max(1, round(s / 2))) if (s >= 2 or area >= 25) else mask
    core = core if core.sum() >= max(3, 0.15 * area) else mask
    mean_in = float(v[core if s >= 2 else mask].mean())
    if ring.sum() >= 5:
        ring_v = v[ring]
        mean_ring, std_ring = float(ring_v.mean()), float(ring_v.std())
    else:
        ring_v, mean_ring, std_ring = None, mean_in, 0.0
    noise = _tissue_noise(mask, win, ring_v, ctx, region, gap + width)
    diff = mean_in - mean_ring
    modality = (ctx.modality or "").upper()
    contrast = diff if ctx.calibrated else diff / max(std_ring, noise)
    intensity, unit = intensity_class(contrast, modality, th, calibrated=ctx.calibrated)

    # texture on the core against the noise of the surrounding tissue
    texture_score = float(v[core].std()) / noise
    # a std from a few pixels is itself uncertain: demand more of small ROIs before calling them heterogeneous
    n_core = int(core.sum() / (s * s))  # resampled pixels are not independent: count original pixels
    texture_cut = th.texture_ratio * (1 + 1.5 / math.sqrt(2 * max(n_core - 1, 1)))
    texture = "heterogeneous" if texture_score > texture_cut else "homogeneous"

    shape, circularity, solidity = shape_class(mask, th, s)
    edge = (ndimage.binary_dilation(mask) & ~mask) | (mask & ~ndimage.binary_erosion(mask))
    sharpness = float(ctx.gradient_in(win)[edge].mean()) / max(abs(diff), 1e-6)
    cnr = abs(diff) / noise
    margin = "well_defined" if sharpness >= th.margin_sharpness and cnr >= th.margin_min_cnr else "ill_defined"

    long_mm, short_mm = principal_axes_mm(mask, ctx.spacing) if ctx.has_spacing else (None, None)
    return RoiFacts(
        label=label or "",
        bbox=(xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h),
        area_pixels=area,
        area_fraction=area_fraction,
        area_mm2=area_mm2,
        centroid=(cx / w, cy / h),
        side=patient_side(cx, cy, ctx),
        vertical_position=vertical_position(cy, ctx),
        ap_position=ap_position(cx, cy, ctx),
        region=region,
        size_class=size_class(diameter, area_fraction, th),
        equivalent_diameter_mm=diameter,
        long_axis_mm=long_mm,
        short_axis_mm=short_mm,
        intensity=intensity,
        contrast=contrast,
        contrast_unit=unit,
        mean_value=mean_in,
        surround_value=mean_ring,
        value_unit=ctx.value_unit,
        attenuation=attenuation_class(mean_in) if ctx.calibrated else "",
        texture=texture,
        texture_score=texture_score,
        glcm_homogeneity=_glcm_homogeneity(v, mask),
        shape=shape,
        circularity=circularity,
        solidity=solidity,
        margin=margin,
        edge_sharpness=sharpness,
        relations=rel,
    )


def lesion_relations(findings: list[RoiFacts], ctx: ImageContext) -> list[RoiFacts]:
    """The findings of one image (one origin) with their relations to each other filled in: the others'
    ids, labels, sides and centroid distances (nearest first), 'multiple lesions' and their count."""
    h, w = ctx.shape
    row_mm, col_mm = ctx.pixel_mm
    out = []
    for f in findings:
        others = []
        for g in findings:
            if g is f:
                continue
            dx = (g.centroid[0] - f.centroid[0]) * w * col_mm
            dy = (g.centroid[1] - f.centroid[1]) * h * row_mm
            others.append(OtherLesion(g.roi_id, g.label, g.side, round(math.hypot(dx, dy), 2)))
        others.sort(key=lambda o: o.distance)
        rel = replace(f.relations, other_lesions=tuple(others), multiple_lesions=len(findings) > 1, n_lesions=len(findings))
        out.append(replace(f, relations=rel))
    return out
