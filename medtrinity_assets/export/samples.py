"""What one exported sample is, assembled from the triplet, its image row and its ROI rows.

Every export format is written from the same :class:`ExportSample` list, so the formats agree with
each other. Only hashed references travel: sample ids, salted subject keys, content hashes; never an
input path or ``rel_path``. Selection happens here too: failed triplets, leaked images and
non-representative near-duplicates are dropped and counted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from medtrinity_assets.quality.splits import SPLITS
from medtrinity_assets.roi.facts import RoiFacts
from medtrinity_assets.tables import json_or_value

ATTRIBUTE_FIELDS = ("modality", "organ", "roi_location", "texture", "relations")
OK_STATUSES = ("ok", "success", "succeeded", "done")


@dataclass
class ExportSample:
    id: str
    image_bytes: bytes
    image_sha256: str
    width: int
    height: int
    caption: str
    modality: str = ""
    organ: str = ""
    disease: str = ""
    labels: list[str] = field(default_factory=list)
    split: str = ""
    source: str = ""
    licence: str = ""
    subject_key: str = ""
    volume_ref: str = ""
    slice_index: int = -1
    coarse_caption: str = ""
    rois: list[dict[str, Any]] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)
    generator: dict[str, str] = field(default_factory=dict)
    prompt_sha256: str = ""
    duplicates: list[dict[str, Any]] = field(default_factory=list)  # other members of its near-dup group
    image_path: str = ""  # the content-addressed blob under data_root (exports link to it; never exported)
    image_facts: dict[str, Any] = field(default_factory=dict)  # the image_facts row: body region, organs, measurements
    annotated: bool = False  # a ground-truth annotation (label map or boxes) covers the image: absence is known
    annotation_labels: list[str] = field(default_factory=list)  # every label that annotation could have shown
    facts: list[RoiFacts] = field(default_factory=list)  # the typed facts of ``rois``, same order (VQA reads these)

    @property
    def key(self) -> str:
        """A file-name-safe key (WebDataset keys must not hold dots)."""
        return "".join(c if c.isalnum() or c in "-_" else "_" for c in self.id)


@dataclass
class Selection:
    """What happened to each triplet of a shard on its way to the export."""

    triplets: int = 0
    exported: int = 0
    failed: int = 0
    leaked: int = 0
    duplicates_folded: int = 0
    missing_image: int = 0
    no_split: int = 0  # image row without a train/validation/test split (ingest assigns one per subject)

    def as_metadata(self) -> dict[str, int]:
        return dict(self.__dict__)


def _text(value: Any) -> str:
    value = json_or_value(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items() if v not in (None, "", [], {}))
    if isinstance(value, (list, tuple)):
        return "; ".join(_text(v) for v in value if v not in (None, ""))
    return str(value)


def normalise_rle(value: Any) -> dict[str, Any] | None:
    """COCO RLE as {"size": [h, w], "counts": str}; None when absent."""
    value = json_or_value(value)
    if not isinstance(value, Mapping) or "counts" not in value or "size" not in value:
        return None
    counts = value["counts"]
    if isinstance(counts, (bytes, bytearray)):
        counts = counts.decode("ascii")
    if isinstance(counts, list):  # uncompressed RLE: compress it so every format holds one kind
        from pycocotools import mask as mask_utils

        h, w = (int(x) for x in value["size"])
        counts = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)["counts"].decode("ascii")
    return {"size": [int(x) for x in value["size"]], "counts": str(counts)}


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def roi_record(facts: RoiFacts, mask_rle: Any = None) -> dict[str, Any]:
    """One ROI as every export carries it: the facts record's values (codes, numbers, relations) and its mask."""
    position = " ".join(p for p in (facts.vertical_position, facts.ap_position) if p and p != "unknown")
    return {
        "roi_id": facts.roi_id,
        "label": facts.label,
        "kind": facts.kind,
        "origin": facts.origin,
        "confidence": _finite(facts.confidence),
        "bbox": [float(v) for v in facts.bbox or ()],
        "mask_rle": normalise_rle(mask_rle),
        "area_fraction": _finite(facts.area_fraction),
        "area_mm2": _finite(facts.area_mm2),
        "diameter_mm": _finite(facts.equivalent_diameter_mm),
        "centroid": [float(v) for v in facts.centroid or ()],
        "side": facts.side,
        "position": position,
        "region": facts.region,
        "size_class": facts.size_class,
        "intensity": facts.intensity,
        "texture": facts.texture,
        "shape": facts.shape,
        "margin": facts.margin,
        "relations": json.loads(facts.relations.to_json()),
    }


def _generator(value: Any) -> dict[str, str]:
    value = json_or_value(value)
    if isinstance(value, Mapping):
        return {k: str(value.get(k) or "") for k in ("backend", "model", "version")}
    return {"backend": str(value or ""), "model": "", "version": ""}


def _attributes(value: Any) -> dict[str, str]:
    value = json_or_value(value)
    if not isinstance(value, Mapping):
        return {k: "" for k in ATTRIBUTE_FIELDS}
    return {k: _text(value.get(k)) for k in ATTRIBUTE_FIELDS}


def annotation_of(img: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """(annotated, labels): whether a ground-truth label map or box list covers the image, and the label
    map's names (a box list names only what it holds, so its vocabulary is the source's)."""
    names = json_or_value(img.get("gt_label_names_json"))
    labels = sorted({str(v) for v in names.values()}) if isinstance(names, Mapping) else []
    boxes = json_or_value(img.get("gt_boxes_json"))
    return bool(img.get("gt_mask_path")) or isinstance(boxes, list), labels


def select_samples(
    triplets: Iterable[Mapping[str, Any]],
    images_by_id: Mapping[str, Mapping[str, Any]],
    rois_by_id: Mapping[str, list[Mapping[str, Any]]],
    read_image: Callable[[str], bytes],
    leaked: set[str] = frozenset(),
    representative_of: Mapping[str, str] | None = None,
    group_members: Mapping[str, list[Mapping[str, Any]]] | None = None,
    image_facts_by_id: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[ExportSample], Selection]:
    """The shard's exportable samples, in sample-id order, and what was dropped.

    ``representative_of`` maps a duplicate to its group's representative; only the representative is
    exported, carrying ``group_members`` (the provenance of the others).
    """
    sel = Selection()
    out = []
    representative_of = representative_of or {}
    group_members = group_members or {}
    image_facts_by_id = image_facts_by_id or {}
    for t in sorted(triplets, key=lambda r: str(r.get("sample_id"))):
        sel.triplets += 1
        sid = str(t.get("sample_id"))
        if str(t.get("status") or "ok").lower() not in OK_STATUSES or not (t.get("description") or "").strip():
            sel.failed += 1
            continue
        if sid in leaked:
            sel.leaked += 1
            continue
        rep = representative_of.get(sid, sid)
        if rep != sid:
            sel.duplicates_folded += 1
            continue
        img = images_by_id.get(sid)
        if img is None:
            sel.missing_image += 1
            continue
        if str(img.get("split") or "") not in SPLITS:
            sel.no_split += 1
            continue
        try:
            data = read_image(str(img.get("image_path") or ""))
        except FileNotFoundError:
            sel.missing_image += 1
            continue
        prov = json_or_value(t.get("provenance"))
        prov = prov if isinstance(prov, Mapping) else {}
        labels = json_or_value(img.get("labels")) or json_or_value(prov.get("original_label")) or []
        if isinstance(labels, str):
            labels = [labels]
        slice_index = img.get("slice_index")
        annotated, annotation_labels = annotation_of(img)
        rows = rois_by_id.get(sid, [])
        facts = [RoiFacts.from_row(r) for r in rows]
        out.append(
            ExportSample(
                id=sid,
                image_bytes=data,
                image_sha256=str(img.get("image_sha256") or ""),
                width=int(img.get("width") or 0),
                height=int(img.get("height") or 0),
                caption=str(t.get("description")),
                modality=str(img.get("modality") or t.get("modality") or ""),
                organ=str(img.get("organ") or t.get("organ") or ""),
                disease=str(img.get("disease") or t.get("disease") or ""),
                labels=[str(x) for x in labels],
                split=str(img.get("split") or ""),
                source=str(img.get("source") or t.get("source") or ""),
                licence=str(img.get("licence") or prov.get("licence") or ""),
                subject_key=str(img.get("subject_key") or ""),
                volume_ref=str(img.get("volume_ref") or ""),
                slice_index=int(slice_index) if slice_index is not None else -1,
                coarse_caption=_text(t.get("coarse_caption")),
                rois=[roi_record(f, r.get("mask_rle")) for f, r in zip(facts, rows)],
                facts=facts,
                attributes=_attributes(t.get("attributes")),
                generator=_generator(t.get("generator")),
                prompt_sha256=str(t.get("prompt_sha256") or ""),
                duplicates=[dict(m) for m in group_members.get(sid, []) if str(m.get("sample_id")) != sid],
                image_path=str(img.get("image_path") or ""),
                image_facts=dict(image_facts_by_id.get(sid) or {}),
                annotated=annotated,
                annotation_labels=annotation_labels,
            )
        )
        sel.exported += 1
    return out, sel
