"""One partition of the ``images`` table -> ROI rows: candidates (ground truth or experts), components, facts.

The stage in three steps per image:
1. candidates: the label map and boxes shipped with the image (``roi: ground_truth``) or the
   applicable expert models' masks (``roi: expert``);
2. every connected component above ``min_component_pixels`` becomes a ROI;
3. facts (:mod:`facts`) with the anatomy candidates (and the body outline) as reference regions,
   then relations between the findings of the same origin.
A problem with one image or one model becomes an error row naming it; the partition goes on.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from medtrinity_assets.roi import rle
from medtrinity_assets.roi.builtin import ExpertInput
from medtrinity_assets.roi.components import split_components
from medtrinity_assets.roi.facts import GREY, ImageContext, Thresholds, describe, lesion_relations, value_unit_of
from medtrinity_assets.roi.ground_truth import Candidate, from_boxes, from_label_map, parse_boxes, parse_label_names
from medtrinity_assets.roi.image_facts import ImageReadings, image_facts_row, region_from_ground_truth
from medtrinity_assets.roi.registry import ResolvedModel
from medtrinity_assets.storage import DataLayout

if TYPE_CHECKING:
    from medtrinity_assets.config import PipelineConfig

GROUND_TRUTH = "ground_truth"


@dataclass
class RoiSettings:
    """The ``rois`` knobs: minimum component size, fact thresholds, label kinds (name -> anatomy|finding)."""

    min_component_pixels: int = 9
    thresholds: Thresholds = field(default_factory=Thresholds)
    label_kinds: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> RoiSettings:
        """The typed ``rois`` section (its ``min_component_pixels`` wins over the top-level one)."""
        rois = cfg.rois
        return cls(
            min_component_pixels=rois.min_component_pixels or cfg.min_component_pixels,
            thresholds=rois.thresholds,
            label_kinds=dict(rois.label_kinds),
        )


@dataclass
class PartitionStats:
    images: int = 0
    images_with_rois: int = 0
    dropped_components: int = 0
    errors: int = 0
    by_origin: Counter = field(default_factory=Counter)
    by_label: Counter = field(default_factory=Counter)
    models_used: dict[str, str] = field(default_factory=dict)  # model:<name> -> version@digest
    by_region: Counter = field(default_factory=Counter)  # body region ('' unknown) -> images


@dataclass
class RoiPartition:
    """What the ROI stage makes of one images partition: ROI rows, one image-facts row per image, counts."""

    rois: list[dict[str, Any]]
    image_facts: list[dict[str, Any]]
    stats: PartitionStats
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # QUARANTINE_SCHEMA rows, stage 'roi'


def roi_id(sample_id: str, origin: str, label: str, component: int) -> str:
    return hashlib.sha256(f"{sample_id}|{origin}|{label}|{component}".encode()).hexdigest()[:20]


def _png_array(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return np.asarray(im)


def load_image(row: dict[str, Any], layout: DataLayout) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, rgb): the physical values (``values_path`` .npy) or grey levels of the PNG (RGB -> luminance),
    and the RGB pixels for colour images (None otherwise)."""
    rgb = None
    if row.get("values_path"):
        values = np.load(layout.resolve(row["values_path"]), allow_pickle=False)
    else:
        arr = _png_array(layout.resolve(row["image_path"]))
        if arr.ndim == 3:
            rgb = np.ascontiguousarray(arr[..., :3]).astype(np.uint8, copy=False)
            values = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        else:
            values = arr
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"values of shape {values.shape}: expected one 2D slice")
    h, w = row.get("height"), row.get("width")
    if h and w and values.shape != (h, w):
        raise ValueError(f"values shape {values.shape} differs from the image's {h}x{w}")
    return values, rgb


def load_values(row: dict[str, Any], layout: DataLayout) -> np.ndarray:
    """The image's physical values or grey levels (see :func:`load_image`)."""
    return load_image(row, layout)[0]


def _spacing(row: dict[str, Any]) -> tuple[float, float]:
    sp = row.get("pixel_spacing") or []
    if len(sp) >= 2 and all(s is not None and math.isfinite(s) and s > 0 for s in sp[:2]):
        return float(sp[0]), float(sp[1])
    return float("nan"), float("nan")


def _error_row(row: dict[str, Any], origin: str, label: str, reason: str) -> dict[str, Any]:
    return {
        "sample_id": row["sample_id"], "source": row.get("source"), "shard": row.get("shard"),
        "roi_id": roi_id(row["sample_id"], origin, label, -1), "label": label, "origin": origin,
        "status": "error", "error": reason,
    }


def _none_if_nan(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def expert_input(row: dict[str, Any], values: np.ndarray, rgb: np.ndarray | None) -> ExpertInput:
    spacing = _spacing(row)
    known = math.isfinite(spacing[0])
    # physical: HU of calibrated CT or MR signal -- not the grey levels an 8-bit picture's .npy holds
    physical = bool(row.get("values_path")) and value_unit_of(
        str(row.get("modality") or ""), str(row.get("window") or ""), True) != GREY
    return ExpertInput(values, str(row.get("modality") or "").upper(), str(row.get("organ") or ""),
                       float(np.mean(spacing)) if known else 1.0, known, physical,
                       row.get("col_toward") or "", row.get("row_toward") or "", rgb)


def image_candidates(row: dict[str, Any], values: np.ndarray, mode: str, experts: list[tuple[ResolvedModel, Any]],
                     settings: RoiSettings, layout: DataLayout, readings: ImageReadings | None = None,
                     rgb: np.ndarray | None = None, volume_candidates: list[Candidate] | None = None) -> list[Candidate]:
    """Ground-truth or expert candidates of one image (errors included as candidates); what each expert
    said about the image as a whole goes to ``readings``. ``volume_candidates``: this slice's share of what
    volume-level experts (bundles, precomputed masks) found, already on the image grid."""
    shape = values.shape
    readings = readings if readings is not None else ImageReadings()
    if mode == GROUND_TRUTH:
        out: list[Candidate] = []
        try:
            if row.get("gt_mask_path"):
                names = parse_label_names(row.get("gt_label_names_json"))
                out += from_label_map(_png_array(layout.resolve(row["gt_mask_path"])), names, shape, settings.label_kinds)
            out += from_boxes(parse_boxes(row.get("gt_boxes_json")), shape, settings.label_kinds)
        except (OSError, ValueError) as exc:
            out.append(Candidate("", "finding", GROUND_TRUTH, None, error=f"ground truth unreadable: {exc}"))
        return out
    out = list(volume_candidates or [])
    for c in out:  # a volume expert ran on this slice (it may have found nothing here)
        if c.error is None:
            readings.add(c.origin, None, {}, "")
    applicable = [(m, e) for m, e in experts if m.applies(row.get("modality"), row.get("organ"))]
    if not applicable and volume_candidates is None:
        return [Candidate("", "finding", "expert", None, error=(
            f"no registered expert model applies to modality={row.get('modality')!r}, organ={row.get('organ')!r}; "
            "add one to models.yaml or mark the source roi: none"))]
    inp = expert_input(row, values, rgb)
    for model, expert in applicable:
        if isinstance(expert, Exception) or not model.ok:
            reason = model.error if not model.ok else str(expert)
            out.append(Candidate("", "finding", f"expert:{model.name}@{model.version or 'unresolved'}", None,
                                 error=f"model {model.name} unavailable: {reason}"))
            continue
        try:
            reading = expert.read(inp)
            out += expert.candidates(reading)
            readings.add(model.origin, reading.region, reading.measurements, reading.note)
        except Exception as exc:  # one image that breaks one model: an error row, the rest goes on
            out.append(Candidate("", "finding", model.origin, None,
                                 error=f"model {model.name}@{model.version} failed on this image: {type(exc).__name__}: {exc}"))
    return out


def describe_image(row: dict[str, Any], layout: DataLayout, mode: str, experts: list[tuple[ResolvedModel, Any]],
                   settings: RoiSettings, stats: PartitionStats | None = None) -> list[dict[str, Any]]:
    """All ROI rows (and error rows) of one image."""
    return describe_image_with_facts(row, layout, mode, experts, settings, stats)[0]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Holes filled inside the mask's bounding box (the same result as on the whole image, a fraction of the work)."""
    from scipy import ndimage

    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return mask
    win = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    out = mask.copy()
    out[win] = ndimage.binary_fill_holes(mask[win])
    return out


def describe_image_with_facts(row: dict[str, Any], layout: DataLayout, mode: str, experts: list[tuple[ResolvedModel, Any]],
                              settings: RoiSettings, stats: PartitionStats | None = None,
                              volume: VolumeOutput | None = None
                              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All ROI rows (and error rows) of one image, and its image-facts row."""
    stats = stats if stats is not None else PartitionStats()
    stats.images += 1
    origin_default = GROUND_TRUTH if mode == GROUND_TRUTH else "expert"
    try:
        values, rgb = load_image(row, layout)
    except Exception as exc:
        stats.errors += 1
        reason = f"image unreadable for ROI extraction: {type(exc).__name__}: {exc}"
        return [_error_row(row, origin_default, "", reason)], image_facts_row(row, [], None, status="error", error=reason)
    readings = ImageReadings()
    candidates = image_candidates(row, values, mode, experts, settings, layout, readings, rgb,
                                  volume.candidates if volume is not None else None)
    for origin in volume.origins if volume is not None else ():
        readings.add(origin, None, {}, "")

    spacing = _spacing(row)
    references: dict[str, np.ndarray] = {}
    for c in candidates:
        if c.mask is not None and c.kind == "anatomy":
            references[c.label] = references[c.label] | c.mask if c.label in references else c.mask.copy()
    # label maps carve lesions out of their organ; as a reference region the organ includes what it encloses
    references = {name: _fill_holes(m) for name, m in references.items()}
    if "body" not in references and "field of view" in references:
        references["body"] = references["field of view"]  # the frame positions are measured in
    if "body" not in references:
        from medtrinity_assets.roi.builtin.body import body_mask

        px = float(np.nanmean(spacing)) if math.isfinite(spacing[0]) else 1.0
        body = body_mask(values, row.get("modality") or "", px)
        if body.any():
            references["body"] = body
    if mode == GROUND_TRUTH:
        call = region_from_ground_truth([(c.label, c.mask) for c in candidates if c.mask is not None and c.kind == "anatomy"],
                                        int(references["body"].sum()) if "body" in references else 0)
        if call is not None:
            readings.add(GROUND_TRUTH, call, {}, "")
    orig_w = row.get("orig_width") or 0
    ctx = ImageContext(values, row.get("modality") or "", spacing, row.get("col_toward") or "", row.get("row_toward") or "",
                       references, native_scale=(values.shape[1] / orig_w) if orig_w else 1.0, thresholds=settings.thresholds,
                       value_unit=value_unit_of(row.get("modality") or "", row.get("window") or "", bool(row.get("values_path"))))
    findings_union = np.zeros(values.shape, bool)
    for c in candidates:
        if c.mask is not None and c.kind == "finding":
            findings_union |= c.mask

    rows: list[dict[str, Any]] = []
    for c in candidates:
        if c.error is not None or c.mask is None:
            rows.append(_error_row(row, c.origin, c.label, c.error or "no mask"))
            stats.errors += 1
            continue
        comps = split_components(c.mask, settings.min_component_pixels)
        stats.dropped_components += comps.dropped
        for i, m in enumerate(comps.masks):
            try:
                facts = describe(m, ctx, c.label, exclude=findings_union & ~m)
            except Exception as exc:
                rows.append(_error_row(row, c.origin, c.label, f"facts failed for component {i}: {type(exc).__name__}: {exc}"))
                stats.errors += 1
                continue
            facts = replace(facts, roi_id=roi_id(row["sample_id"], c.origin, c.label, i), kind=c.kind, origin=c.origin,
                            confidence=_none_if_nan(c.confidence), component=i, n_components=len(comps.masks))
            rows.append({"sample_id": row["sample_id"], "source": row.get("source"), "shard": row.get("shard"),
                         "model_sha256": c.digest, "mask_rle": rle.encode(m), "status": "ok", "error": None,
                         "_facts": facts})
    # relations between the findings of one origin (other lesions, 'multiple lesions')
    by_origin: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["status"] == "ok" and r["_facts"].kind == "finding":
            by_origin.setdefault(r["_facts"].origin, []).append(r)
    for group in by_origin.values():
        for r, related in zip(group, lesion_relations([r["_facts"] for r in group], ctx)):
            r["_facts"] = related
    for r in rows:
        if "_facts" in r:
            facts = r.pop("_facts")
            r.update(facts.to_row())
            stats.by_origin[facts.origin] += 1
            stats.by_label[facts.label] += 1
    if any(r["status"] == "ok" for r in rows):
        stats.images_with_rois += 1
    errors = [r["error"] for r in rows if r["status"] == "error"]
    ok = any(r["status"] == "ok" for r in rows) or readings.experts
    if mode != GROUND_TRUTH and not readings.experts and errors:
        status = "no_expert" if all(e.startswith("no registered expert") for e in errors) else "error"
    else:
        status = "ok" if ok or not errors else "error"
    facts_row = image_facts_row(row, rows, readings, status=status,
                                error="; ".join(dict.fromkeys(errors)) if status != "ok" else None)
    stats.by_region[facts_row["body_region"]] += 1
    return rows, facts_row


def roi_partition(image_rows: Iterable[dict[str, Any]], layout: DataLayout, mode: str,
                  models: list[ResolvedModel], settings: RoiSettings, *, volumes=None, masks=None) -> RoiPartition:
    """ROI rows and image-facts rows of a whole partition. Experts are loaded once, and only those some image needs.

    ``mode`` none: no ROI rows; every image still gets an image-facts row (its region from the metadata).
    Volume-level experts -- MONAI bundles among ``models`` and the source's precomputed ``masks``
    (:class:`roi.precomputed.PrecomputedMasks`) -- run once per volume, read from the source through
    ``volumes`` (:class:`roi.volumes.SourceVolumes`), and their label volume is sliced like the images;
    a volume they cannot serve becomes a ``quarantine`` row (stage roi) and error rows for its images."""
    from medtrinity_assets.roi.expert import load_expert

    stats = PartitionStats()
    rows: list[dict[str, Any]] = []
    facts: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    image_rows = list(image_rows)
    if mode not in (GROUND_TRUTH, "expert"):
        for r in image_rows:
            facts.append(image_facts_row(r, [], None, status="no_expert", error="the source is marked roi: none"))
            stats.images += 1
            stats.by_region[facts[-1]["body_region"]] += 1
        return RoiPartition(rows, facts, stats, quarantine)
    experts: list[tuple[ResolvedModel, Any]] = []
    volume_experts: list[tuple[str, str, str, Any]] = []  # (name, origin, digest, expert or the error)
    if mode == "expert":
        for m in models:
            if not any(m.applies(r.get("modality"), r.get("organ")) for r in image_rows):
                continue
            stats.models_used[f"model:{m.name}"] = m.version_key
            try:
                loaded = load_expert(m)
            except Exception as exc:
                loaded = exc
            if m.kind == "monai_bundle":
                volume_experts.append((m.name, f"expert:{m.name}@{m.version or 'unresolved'}", m.sha256, (m, loaded)))
            else:
                experts.append((m, loaded))
        if masks is not None:
            stats.models_used[f"masks:{masks.name}"] = masks.version_key
            volume_experts.append((masks.name, masks.origin, masks.digest, masks))
    # one volume at a time: a volume expert's label volume and its slices' masks live only while its images are described
    volume_rows: dict[str, list[dict[str, Any]]] = {}
    for r in image_rows:
        if r.get("volume_ref") and (r.get("slice_index") or 0) >= 0:
            volume_rows.setdefault(r["volume_ref"], []).append(r)
    current, by_sample = None, {}
    for r in image_rows:
        key = r.get("volume_ref") or None
        if volume_experts and key in volume_rows and key != current:
            current, by_sample = key, _volume_candidates(key, volume_rows[key], volume_experts, volumes, settings, quarantine)
        roi_rows, facts_row = describe_image_with_facts(r, layout, mode, experts, settings, stats,
                                                        by_sample.pop(r["sample_id"], None))
        rows += roi_rows
        facts.append(facts_row)
    return RoiPartition(rows, facts, stats, quarantine)


@dataclass
class VolumeOutput:
    """One slice's share of the volume-level experts' work."""

    candidates: list[Candidate]
    origins: list[str]  # the experts that ran on it (possibly finding nothing here)


def _volume_candidates(key: str, vol_rows: list[dict[str, Any]], volume_experts: list, volumes, settings: RoiSettings,
                       quarantine: list[dict[str, Any]]) -> dict[str, list[Candidate]]:
    """sample_id -> what the volume-level experts found on each of one volume's images."""
    from medtrinity_assets.roi.ground_truth import from_label_map
    from medtrinity_assets.roi.volumes import slice_like_image

    out: dict[str, list[Candidate]] = {}
    ran: dict[str, list[str]] = {}
    for name, origin, digest, expert in volume_experts:
        applies = expert[0].applies if isinstance(expert, tuple) else (lambda *_: True)
        mine = [r for r in vol_rows if applies(r.get("modality"), r.get("organ"))]
        if not mine:
            continue
        try:
            labels, names = _run_volume_expert(expert, key, mine, volumes)
        except Exception as exc:  # one volume a model cannot serve: its images get error rows, the rest goes on
            cls = getattr(exc, "error_class", "expert_failed")
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
            quarantine.append({"source": mine[0].get("source"), "rel_path": mine[0].get("rel_path") or "", "stage": "roi",
                               "reason": f"{name}: {reason}", "error_class": cls})
            for r in mine:
                out.setdefault(r["sample_id"], []).append(
                    Candidate("", "finding", origin, None, error=f"{name} ({cls}): {reason}"))
            continue
        for r in mine:
            lm = slice_like_image(labels, r)
            cands = from_label_map(lm, names, lm.shape, settings.label_kinds, origin=origin)
            for c in cands:
                c.digest = digest
                c.confidence = float("nan")  # a label volume carries no per-voxel probability
            out.setdefault(r["sample_id"], []).extend(cands)
            ran.setdefault(r["sample_id"], []).append(origin)
        del labels
    return {sid: VolumeOutput(out.get(sid, []), ran.get(sid, [])) for sid in set(out) | set(ran)}


def _run_volume_expert(expert, key: str, rows: list[dict[str, Any]], volumes):
    """(canonical label volume, names) of one volume from a bundle (model, loaded) or precomputed masks."""
    import tempfile
    from pathlib import Path

    from medtrinity_assets.roi.precomputed import PrecomputedMasks
    from medtrinity_assets.roi.volumes import VolumeError

    if volumes is None:
        raise VolumeError("no_source", "volume-level experts need the source's volumes (the ROI stage passes them)")
    volume = volumes.get(key)
    if isinstance(expert, PrecomputedMasks):
        return expert.labels_for(volume, rows)
    model, loaded = expert
    if isinstance(loaded, Exception):
        raise VolumeError("model_unavailable", f"model {model.name} unavailable: {loaded}")
    with tempfile.TemporaryDirectory(prefix="volume_") as tmp:
        return loaded.labels_for(volumes.as_nifti(volume, Path(tmp)), rows)


def describe_partition(image_rows: Iterable[dict[str, Any]], layout: DataLayout, mode: str,
                       models: list[ResolvedModel], settings: RoiSettings) -> tuple[list[dict[str, Any]], PartitionStats]:
    """ROI rows of a whole partition (see :func:`roi_partition`, which also gives the image-facts rows)."""
    result = roi_partition(image_rows, layout, mode, models, settings)
    return result.rois, result.stats


def counts_markdown(stats: PartitionStats) -> str:
    """Counts by origin and by label as a Markdown table for the Dagster UI."""
    lines = ["| origin | ROIs |", "|---|---:|"] + [f"| `{o}` | {n} |" for o, n in sorted(stats.by_origin.items())]
    lines += ["", "| label | ROIs |", "|---|---:|"] + [f"| {lbl} | {n} |" for lbl, n in sorted(stats.by_label.items())]
    return "\n".join(lines)


def encode_png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False)
    return buf.getvalue()
