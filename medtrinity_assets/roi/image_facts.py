"""One row per image of what the image shows as a whole: body region, organs, image measurements.

The ROI stage fills it from what the experts read (and the ground truth's organ labels); the
``text`` stage words it; the card reads coverage from it. Schema: ``tables.IMAGE_FACTS_SCHEMA``.

Body region, in order of trust: an expert's measurement on this slice (``expert:<name>@<version>``),
else the metadata's organ mapped to its region (``metadata``), else '' -- said, not guessed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from medtrinity_assets.roi.body_region import RegionCall, agreement, region_of_organ

# anatomy labels that are tissue classes or frames, not organs: an image does not "show" them as organs
NON_ORGANS = frozenset({"body", "fat", "air", "field of view", "tissue", "background", "patient", "external", "skin"})


@dataclass
class ImageReadings:
    """What the experts said about one image, gathered while its ROIs are built."""

    regions: list[tuple[str, RegionCall]] = field(default_factory=list)  # (origin, call), registry order
    measurements: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    experts: list[str] = field(default_factory=list)  # origins that ran and produced a reading

    def add(self, origin: str, region: RegionCall | None, measurements: dict[str, Any], note: str) -> None:
        if origin not in self.experts:
            self.experts.append(origin)
        if region is not None:
            self.regions.append((origin, region))
        for k, v in measurements.items():
            self.measurements.setdefault(k, v)
        if note:
            self.notes.append(note)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):  # numpy scalars
        return _clean(v.item())
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def region_from_ground_truth(candidates: list[tuple[str, Any]], body_px: int) -> RegionCall | None:
    """A body region from a label map's organs: lungs over 8 % of the body make a chest slice (lower chest
    in an abdominal series), else the region of the largest organ label. ``candidates``: (label, mask)."""
    areas: dict[str, int] = {}
    for label, mask in candidates:
        areas[label.lower()] = areas.get(label.lower(), 0) + int(mask.sum())
    lung = sum(a for name, a in areas.items() if region_of_organ(name) == "chest" and "lung" in name)
    if body_px and lung / body_px >= 0.08:
        return RegionCall("chest", evidence=f"labelled lung {lung / body_px:.0%} of the body")
    for name, _a in sorted(areas.items(), key=lambda kv: -kv[1]):
        region = region_of_organ(name)
        if region:
            return RegionCall(region, evidence=f"labelled {name}")
    return None


def organs_of(roi_rows: Iterable[dict[str, Any]]) -> list[str]:
    """Distinct organ labels among an image's ok anatomy ROIs (tissue classes and frames left out), sorted."""
    return sorted({str(r["label"]) for r in roi_rows
                   if r.get("status") == "ok" and r.get("kind") == "anatomy" and r.get("label")
                   and str(r["label"]).lower() not in NON_ORGANS})


def image_facts_row(image: dict[str, Any], roi_rows: list[dict[str, Any]], readings: ImageReadings | None,
                    *, status: str = "ok", error: str | None = None) -> dict[str, Any]:
    """The image-facts row of one image (``status``: ok | no_expert | error)."""
    readings = readings or ImageReadings()
    meta_organ = str(image.get("organ") or "")
    region, origin, detail = "", "", ""
    if readings.regions:
        origin, call = readings.regions[0]
        region, detail = call.region, call.detail
    elif region_of_organ(meta_organ):
        region, origin = region_of_organ(meta_organ), "metadata"
    meta_region = region_of_organ(meta_organ)
    if origin not in ("", "metadata") and not detail:  # a measured level inside a series labelled otherwise
        detail = {("chest", "abdomen"): "lower chest", ("abdomen", "chest"): "upper abdomen"}.get((region, meta_region), "")
    measurements = dict(readings.measurements)
    if readings.regions and readings.regions[0][1].evidence:
        measurements.setdefault("body_region_evidence", readings.regions[0][1].evidence)
    experts = list(readings.experts)
    for r in roi_rows:
        if r.get("status") == "ok" and r.get("origin") and r["origin"] not in experts:
            experts.append(r["origin"])
    notes_list = [n for n in readings.notes if n]
    if not region:
        notes_list.append("body region unknown: no expert measured it and the metadata names no organ")
    notes = "; ".join(dict.fromkeys(notes_list))
    return {
        "sample_id": image["sample_id"],
        "source": image.get("source"),
        "shard": image.get("shard"),
        "modality": str(image.get("modality") or ""),
        "body_region": region,
        "body_region_origin": origin,
        "body_region_detail": detail,
        "organs": organs_of(roi_rows),
        "metadata_organ": meta_organ,
        "agrees_with_metadata": agreement(region, meta_organ) if origin not in ("", "metadata") else None,
        "measurements_json": json.dumps(_clean(measurements), sort_keys=True),
        "experts": experts,
        "status": status,
        "error": error if error is not None else (notes or None),
    }


def coverage_by_modality(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per modality: images, images with >= 1 organ ROI, their share, and images with a body region.

    The card and the UI read this from the ``image_facts`` table (it is an aggregation, never a recount of ROIs)."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        m = out.setdefault(str(r.get("modality") or "") or "unknown", {"images": 0, "with_organ": 0, "with_region": 0})
        m["images"] += 1
        m["with_organ"] += 1 if r.get("organs") else 0
        m["with_region"] += 1 if r.get("body_region") else 0
    for m in out.values():
        m["organ_coverage"] = round(m["with_organ"] / m["images"], 4) if m["images"] else 0.0
        m["region_coverage"] = round(m["with_region"] / m["images"], 4) if m["images"] else 0.0
    return dict(sorted(out.items()))
