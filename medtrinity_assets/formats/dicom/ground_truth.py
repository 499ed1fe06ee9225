"""DICOM ground truth (SEG segments, RTSTRUCT contours) turned into label maps on an image grid.

Both kinds live in patient space (millimetres, LPS), not in the pixel grid of the images they
annotate: a SEG frame has its own plane position and pixel spacing, an RTSTRUCT contour is a list
of points in mm. So everything here goes through :class:`ImageGrid`, the geometry of a stack of
image planes, and lands on the image's own (native, uncanonicalised) grid; the reader then applies
the same reorientation to the label map as to the pixels.

The functions are standalone so that the real pydicom test objects, whose images are not
shipped, can be checked on the geometry they declare (:func:`grid_from_seg`,
:func:`grid_from_contours`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medtrinity_assets.formats.dicom.geometry import ImageGrid
from medtrinity_assets.formats.dicom.headers import functional_group_item


class GroundTruthError(ValueError):
    """A SEG/RTSTRUCT that cannot be placed on its image (the reason says why)."""


def _f(values: Any) -> np.ndarray:
    return np.asarray([float(v) for v in values], dtype=np.float64)


# ---------------------------------------------------------------- SEG

@dataclass
class SegFrame:
    segment: int  # segment number (0 for a LABELMAP frame whose pixels are segment numbers)
    position: np.ndarray
    source_uid: str
    index: int


def _seg_frames(seg: Dataset) -> tuple[list[SegFrame], np.ndarray, np.ndarray, tuple[float, float]]:
    per_frame = list(seg.get("PerFrameFunctionalGroupsSequence") or [])
    n_frames = int(seg.get("NumberOfFrames") or 1)
    if not per_frame:
        raise GroundTruthError("SEG has no per-frame functional groups: its frames cannot be placed")
    per_frame = per_frame[:n_frames]
    is_labelmap = str(seg.get("SegmentationType", "")).upper() == "LABELMAP"
    frames: list[SegFrame] = []
    orient = spacing = None
    for i, fg in enumerate(per_frame):
        pos_item = functional_group_item(seg, fg, "PlanePositionSequence")
        ori_item = functional_group_item(seg, fg, "PlaneOrientationSequence")
        pm_item = functional_group_item(seg, fg, "PixelMeasuresSequence")
        if pos_item is None or ori_item is None or pm_item is None:
            raise GroundTruthError(f"SEG frame {i + 1} lacks plane position/orientation/pixel spacing")
        orient = _f(ori_item.ImageOrientationPatient)
        spacing = (float(pm_item.PixelSpacing[0]), float(pm_item.PixelSpacing[1]))
        seg_id = fg.get("SegmentIdentificationSequence")
        segment = 0 if is_labelmap else int(seg_id[0].ReferencedSegmentNumber) if seg_id else 1
        src = ""
        deriv = fg.get("DerivationImageSequence")
        if deriv and "SourceImageSequence" in deriv[0] and len(deriv[0].SourceImageSequence):
            src = str(deriv[0].SourceImageSequence[0].get("ReferencedSOPInstanceUID", ""))
        frames.append(SegFrame(segment, _f(pos_item.ImagePositionPatient), src, i))
    assert orient is not None and spacing is not None
    return frames, orient[:3], orient[3:], spacing


def segment_names(seg: Dataset) -> dict[int, str]:
    """Segment number -> label (SegmentLabel, else the property type's meaning)."""
    names: dict[int, str] = {}
    for item in seg.get("SegmentSequence") or []:
        label = str(item.get("SegmentLabel") or "").strip()
        if not label and item.get("SegmentedPropertyTypeCodeSequence"):
            label = str(item.SegmentedPropertyTypeCodeSequence[0].get("CodeMeaning", ""))
        names[int(item.SegmentNumber)] = label or f"segment_{int(item.SegmentNumber)}"
    return names


def _seg_pixels(seg: Dataset) -> np.ndarray:
    """SEG frames as (F, H, W) integer/boolean arrays (highdicom decodes BINARY bit packing)."""
    import highdicom as hd

    hd_seg = seg if isinstance(seg, hd.seg.Segmentation) else hd.seg.Segmentation.from_dataset(seg, copy=False)
    arr = np.asarray(hd_seg.pixel_array)
    if arr.ndim == 2:
        arr = arr[None]
    if str(seg.get("SegmentationType", "")).upper() == "FRACTIONAL":
        arr = arr.astype(np.float32) >= 0.5 * float(seg.get("MaximumFractionalValue", 255))
    return arr


def grid_from_seg(seg: Dataset) -> ImageGrid:
    """The grid a SEG declares: one plane per distinct frame position (for SEGs without images)."""
    frames, row_dir, col_dir, spacing = _seg_frames(seg)
    normal = np.cross(row_dir, col_dir)
    uniq: dict[float, np.ndarray] = {}
    for fr in frames:
        uniq.setdefault(round(float(fr.position @ normal), 3), fr.position)
    order = sorted(uniq)
    return ImageGrid(np.stack([uniq[k] for k in order]), row_dir, col_dir, spacing,
                     int(seg.Rows), int(seg.Columns))


def seg_to_label_map(seg: Dataset, grid: ImageGrid) -> tuple[np.ndarray, dict[int, str], dict[str, int]]:
    """Paint every SEG frame onto ``grid`` (nearest neighbour through patient space).

    Returns the label map (Z, H, W; value = segment number), the segment names, and counts of
    frames placed / not placed (a frame outside every image plane is reported, not guessed).
    """
    frames, row_dir, col_dir, spacing = _seg_frames(seg)
    pixels = _seg_pixels(seg)
    names = segment_names(seg)
    if abs(float(np.dot(np.cross(row_dir, col_dir), grid.normal))) < 0.99:
        raise GroundTruthError("SEG planes are not parallel to the image planes; reslicing is not supported")
    if len(frames) > pixels.shape[0]:
        frames = frames[: pixels.shape[0]]
    max_label = max([*names, 1])
    lm = np.zeros(grid.shape, dtype=np.uint8 if max_label < 256 else np.uint16)
    uid_to_k = grid.slice_of_uid()
    stats = {"frames_placed": 0, "frames_unplaced": 0}
    for fr in frames:
        k = uid_to_k.get(fr.source_uid)
        if k is None:
            k = grid.nearest_slice(fr.position[None])
        if k is None:
            stats["frames_unplaced"] += 1
            continue
        frame = pixels[fr.index]
        if not frame.any():
            stats["frames_placed"] += 1
            continue
        # map target pixel centres into the frame's pixel grid
        d = grid.pixel_centres(k) - fr.position
        c = np.rint(d @ row_dir / spacing[1]).astype(np.int64)
        r = np.rint(d @ col_dir / spacing[0]).astype(np.int64)
        inside = (r >= 0) & (r < frame.shape[0]) & (c >= 0) & (c < frame.shape[1])
        sampled = np.zeros(grid.shape[1:], dtype=frame.dtype)
        sampled[inside] = frame[r[inside], c[inside]]
        if fr.segment == 0:  # LABELMAP: pixel values are segment numbers
            sel = sampled > 0
            lm[k][sel] = sampled[sel]
        else:
            lm[k][sampled > 0] = fr.segment
        stats["frames_placed"] += 1
    return lm, names, stats


def seg_referenced(seg: Dataset) -> tuple[set[str], set[str]]:
    """(series UIDs, SOP instance UIDs) of the images a SEG was derived from."""
    series: set[str] = set()
    sops: set[str] = set()
    for item in seg.get("ReferencedSeriesSequence") or []:
        if item.get("SeriesInstanceUID"):
            series.add(str(item.SeriesInstanceUID))
        for inst in item.get("ReferencedInstanceSequence") or []:
            sops.add(str(inst.get("ReferencedSOPInstanceUID", "")))
    for fg in seg.get("PerFrameFunctionalGroupsSequence") or []:
        for deriv in fg.get("DerivationImageSequence") or []:
            for src in deriv.get("SourceImageSequence") or []:
                sops.add(str(src.get("ReferencedSOPInstanceUID", "")))
    sops.discard("")
    return series, sops


# ---------------------------------------------------------------- RTSTRUCT

@dataclass
class Contour:
    roi_number: int
    kind: str  # CLOSED_PLANAR, POINT, OPEN_PLANAR ...
    points: np.ndarray  # (N, 3) mm
    image_uid: str


def rtstruct_contours(ds: Dataset) -> tuple[dict[int, str], list[Contour]]:
    """ROI number -> name, and every contour of the structure set in patient mm."""
    names = {int(r.ROINumber): str(r.get("ROIName") or f"roi_{int(r.ROINumber)}").strip()
             for r in ds.get("StructureSetROISequence") or []}
    contours: list[Contour] = []
    for roi in ds.get("ROIContourSequence") or []:
        number = int(roi.ReferencedROINumber)
        for c in roi.get("ContourSequence") or []:
            data = c.get("ContourData")
            if not data:
                continue
            pts = _f(data)
            if pts.size % 3:
                continue
            uid = ""
            if c.get("ContourImageSequence"):
                uid = str(c.ContourImageSequence[0].get("ReferencedSOPInstanceUID", ""))
            contours.append(Contour(number, str(c.get("ContourGeometricType", "")).upper(), pts.reshape(-1, 3), uid))
    return names, contours


def rtstruct_referenced(ds: Dataset) -> tuple[set[str], set[str], set[str]]:
    """(series UIDs, SOP instance UIDs, frame-of-reference UIDs) the structure set refers to."""
    series: set[str] = set()
    sops: set[str] = set()
    fors: set[str] = set()
    for fr in ds.get("ReferencedFrameOfReferenceSequence") or []:
        if fr.get("FrameOfReferenceUID"):
            fors.add(str(fr.FrameOfReferenceUID))
        for st in fr.get("RTReferencedStudySequence") or []:
            for se in st.get("RTReferencedSeriesSequence") or []:
                if se.get("SeriesInstanceUID"):
                    series.add(str(se.SeriesInstanceUID))
                for img in se.get("ContourImageSequence") or []:
                    sops.add(str(img.get("ReferencedSOPInstanceUID", "")))
    for roi in ds.get("ROIContourSequence") or []:
        for c in roi.get("ContourSequence") or []:
            for img in c.get("ContourImageSequence") or []:
                sops.add(str(img.get("ReferencedSOPInstanceUID", "")))
    sops.discard("")
    return series, sops, fors


def grid_from_contours(ds: Dataset, spacing: float = 1.0, margin_mm: float = 5.0) -> ImageGrid:
    """An axial grid covering every closed contour (for structure sets whose images are absent)."""
    _, contours = rtstruct_contours(ds)
    closed = [c for c in contours if c.kind == "CLOSED_PLANAR"]
    if not closed:
        raise GroundTruthError("RTSTRUCT has no CLOSED_PLANAR contours to build a grid from")
    pts = np.concatenate([c.points for c in closed])
    lo = pts.min(0) - margin_mm
    hi = pts.max(0) + margin_mm
    zs = sorted({round(float(np.mean(c.points[:, 2])), 3) for c in closed})
    cols = int(np.ceil((hi[0] - lo[0]) / spacing)) + 1
    rows = int(np.ceil((hi[1] - lo[1]) / spacing)) + 1
    origins = np.array([[lo[0], lo[1], z] for z in zs], dtype=np.float64)
    return ImageGrid(origins, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), (spacing, spacing), rows, cols)


def rtstruct_to_label_map(ds: Dataset, grid: ImageGrid) -> tuple[np.ndarray, dict[int, str], dict[str, Any]]:
    """Rasterise every closed planar contour onto ``grid``.

    Contours of one ROI on one slice are combined even-odd (an inner contour is a hole). ROIs are
    painted largest first so that a small structure inside a large one (a lesion in the body
    outline) stays visible in the single-valued label map. Label values are 1..K in ROI-number
    order. Point and open contours carry no area: they are counted in the returned info.
    """
    from skimage.draw import polygon

    names, contours = rtstruct_contours(ds)
    uid_to_k = grid.slice_of_uid()
    masks: dict[int, np.ndarray] = {}
    info: dict[str, Any] = {"contours_placed": 0, "contours_unplaced": 0, "non_area_rois": []}
    for c in contours:
        if c.kind != "CLOSED_PLANAR" or len(c.points) < 3:
            name = names.get(c.roi_number, f"roi_{c.roi_number}")
            if name not in info["non_area_rois"]:
                info["non_area_rois"].append(name)
            continue
        k = uid_to_k.get(c.image_uid)
        if k is None:
            k = grid.nearest_slice(c.points)
        if k is None:
            info["contours_unplaced"] += 1
            continue
        rr, cc = grid.to_pixel(c.points, k)
        pr, pc = polygon(rr, cc, shape=(grid.rows, grid.cols))
        m = masks.setdefault(c.roi_number, np.zeros(grid.shape, dtype=bool))
        hit = np.zeros((grid.rows, grid.cols), dtype=bool)
        hit[pr, pc] = True
        m[k] ^= hit
        info["contours_placed"] += 1
    numbers = sorted(masks)
    value_of = {n: i + 1 for i, n in enumerate(numbers)}
    lm = np.zeros(grid.shape, dtype=np.uint8 if len(numbers) < 256 else np.uint16)
    for n in sorted(numbers, key=lambda n: -int(masks[n].sum())):
        lm[masks[n]] = value_of[n]
    label_names = {value_of[n]: names.get(n, f"roi_{n}") for n in numbers}
    return lm, label_names, info


def merge_label_maps(parts: Sequence[tuple[np.ndarray, dict[int, str]]]) -> tuple[np.ndarray | None, dict[int, str]]:
    """Combine label maps on one grid into one. Labels with the same name (a SEG segment and an
    RTSTRUCT ROI of the same structure) share one value (their union); names left without a voxel
    are dropped, so every name in the result is present in the map."""
    out: np.ndarray | None = None
    value_of: dict[str, int] = {}
    for lm, lnames in parts:
        if out is None:
            out = np.zeros(lm.shape, dtype=np.uint16)
        for value in sorted(lnames):
            sel = lm == value
            if not sel.any():
                continue
            name = lnames[value]
            out[sel] = value_of.setdefault(name, len(value_of) + 1)
    if out is None:
        return None, {}
    present = set(int(v) for v in np.unique(out)) - {0}
    names = {v: n for n, v in value_of.items() if v in present}
    if len(value_of) < 256:
        out = out.astype(np.uint8)
    return out, names
