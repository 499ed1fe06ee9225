"""Table rows (images, image_facts, rois, context, passages) -> one :class:`SampleFacts` per image.

ROI rows are read back into the ROI stage's own record (:meth:`RoiFacts.from_row`); image columns
that hold 'unknown' read as '', and unknown facts are simply not stated downstream.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from medtrinity_assets import vocabulary as V
from medtrinity_assets.generation.sample_facts import ImageFacts, Passage, SampleFacts
from medtrinity_assets.knowledge.queries import passage_meta
from medtrinity_assets.roi.facts import RoiFacts
from medtrinity_assets.tables import json_or_value
from medtrinity_assets.vocabulary import humanise

UNKNOWN = {"", "unknown", "none", "null", "nan"}


def _s(value: Any) -> str:
    """A fact as clean text; unknown markers become ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = humanise(str(value)) if isinstance(value, str) else str(value)
    return "" if text.lower() in UNKNOWN else text


# header facts a description may use (allow-listed by the ingest; scalars only)
ACQUISITION_KEYS = ("ViewPosition", "Laterality", "ImageLaterality", "BodyPartExamined", "body_part", "EchoTime",
                    "RepetitionTime", "PulseSequenceName", "ScanningSequence", "MagneticFieldStrength",
                    "SliceThickness", "MRAcquisitionType")


def _acquisition(meta_json: Any) -> tuple[tuple[str, Any], ...]:
    meta = json_or_value(meta_json)
    if not isinstance(meta, dict):
        return ()
    return tuple((k, meta[k]) for k in ACQUISITION_KEYS if isinstance(meta.get(k), (str, int, float)) and meta[k] != "")


def _spacing(row: dict[str, Any]) -> tuple[float, float] | None:
    sp = row.get("pixel_spacing") or []
    if len(sp) >= 2 and all(x is not None and math.isfinite(x) and x > 0 for x in sp[:2]):
        return float(sp[0]), float(sp[1])
    return None


def slice_region(organ: str, rois: Iterable[RoiFacts]) -> tuple[str, str, str, bool | None]:
    """(body region, detail, origin, agrees with metadata) of one image from its anatomy ROIs, falling back
    to the metadata organ's region. A lung-level slice of an 'abdomen' CT is the chest, and says so."""
    meta_region = next((V.ORGAN_REGION.get(o, "") for o, _ in V.organ_mentions(organ or "") if V.ORGAN_REGION.get(o)), "")
    area: dict[str, float] = defaultdict(float)
    origin = ""
    for r in rois:
        if r.is_finding:
            continue
        for o in V.organs_in(V.humanise(r.label)):
            region = V.ORGAN_REGION.get(o, "")
            if region and region != o:  # an organ, not a region outline
                area[region] += r.area_fraction or 0.0
                origin = origin or r.origin
    if not area:
        return meta_region, "", "metadata" if meta_region else "", None
    ranked = sorted(area, key=lambda k: -area[k])
    region = ranked[0]
    detail = ""
    if {"chest", "abdomen"} <= set(ranked):
        detail = "lower chest and upper abdomen"
    agrees = None if not meta_region else region == meta_region or (detail != "" and meta_region in ranked)
    return region, detail, origin or "anatomy", agrees


def image_facts(row: dict[str, Any], facts_row: dict[str, Any] | None = None,
                rois: Iterable[RoiFacts] = ()) -> ImageFacts:
    """One images row (+ its image_facts row when the ROI stage wrote one) -> ImageFacts.

    The body region and the visible organs come from what the image shows -- the ROI stage's
    ``image_facts`` row, else the anatomy ROIs -- and only fall back to the metadata organ."""
    organ = _s(row.get("organ"))
    rois = list(rois)
    if facts_row and facts_row.get("status") == "ok" and facts_row.get("body_region"):
        region, detail = str(facts_row["body_region"]), str(facts_row.get("body_region_detail") or "")
        origin, agrees = str(facts_row.get("body_region_origin") or ""), facts_row.get("agrees_with_metadata")
    else:
        region, detail, origin, agrees = slice_region(organ, rois)
    visible = tuple(str(o) for o in (facts_row or {}).get("organs") or ()) or tuple(
        dict.fromkeys(V.humanise(r.label) for r in rois if not r.is_finding and r.label and r.label != "body"))
    measurements = json_or_value((facts_row or {}).get("measurements_json")) or {}
    return ImageFacts(
        sample_id=str(row["sample_id"]),
        source=str(row.get("source") or ""),
        modality=str(row.get("modality") or "").strip().upper(),
        organ=organ,
        disease=_s(row.get("disease")),
        labels=tuple(str(x) for x in (row.get("labels") or []) if x),
        axis=str(row.get("axis") or ""),
        window=str(row.get("window") or ""),
        caption_in=str(row.get("caption_in") or ""),
        image_path=str(row.get("image_path") or ""),
        image_sha256=str(row.get("image_sha256") or ""),
        width=int(row.get("width") or 0),
        height=int(row.get("height") or 0),
        pixel_spacing=_spacing(row),
        slice_index=int(row["slice_index"]) if row.get("slice_index") is not None else -1,
        acquisition=_acquisition(row.get("meta_json")),
        body_region=region,
        body_region_detail=detail,
        body_region_origin=origin,
        agrees_with_metadata=agrees,
        visible_organs=visible,
        measurements=tuple((str(k), v) for k, v in measurements.items() if isinstance(v, (int, float, str)))
        if isinstance(measurements, dict) else (),
    )


def roi_facts(row: dict[str, Any]) -> RoiFacts | None:
    """One ROI row -> its facts; error rows (status != ok) carry no facts and give None."""
    if row.get("status") != "ok":
        return None
    return RoiFacts.from_row(row)


def load_passages(layout_root: Path, ids_by_corpus: dict[str, set[str]]) -> dict[str, Passage]:
    """Passage texts for the ids a partition's context names, from ``tables/passages/<corpus>.parquet``."""
    out: dict[str, Passage] = {}
    for corpus, ids in ids_by_corpus.items():
        path = layout_root / "tables" / "passages" / f"{corpus}.parquet"
        if not ids or not path.exists():
            continue
        cols = [c for c in ("passage_id", "title", "text", "meta_json") if c in pq.read_schema(path).names]
        table = pq.read_table(path, columns=cols)
        table = table.filter(pc.is_in(table["passage_id"], value_set=pa.array(sorted(ids), pa.string())))
        for row in table.to_pylist():
            title = str(row.get("title") or "")
            text = str(row.get("text") or "")
            if title and text.startswith(title):  # chunks are embedded with their title prefixed
                text = text[len(title):].lstrip(" :.\n-—")
            meta = passage_meta(row.get("meta_json"))
            out[row["passage_id"]] = Passage(row["passage_id"], 0.0, corpus, title, text, tuple(meta.items()))
    return out


def context_ids(context: pa.Table) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = defaultdict(set)
    if context is None or "passage_ids" not in context.column_names:
        return ids
    corpora_col = context.column("corpora").to_pylist() if "corpora" in context.column_names else None
    for i, pids in enumerate(context.column("passage_ids").to_pylist()):
        corpora = corpora_col[i] if corpora_col else None
        for j, pid in enumerate(pids or []):
            corpus = corpora[j] if corpora and j < len(corpora) else str(pid).split(":", 1)[0]
            ids[corpus].add(pid)
    return ids


def assemble(
    images: Iterable[dict[str, Any]],
    rois: Iterable[dict[str, Any]],
    context: Iterable[dict[str, Any]],
    passages: dict[str, Passage],
    top_k: int = 3,
    image_facts_rows: Iterable[dict[str, Any]] = (),
) -> list[SampleFacts]:
    """Join the tables on sample_id (images drive: one SampleFacts per image row)."""
    by_sample: dict[str, list[RoiFacts]] = defaultdict(list)
    for row in rois:
        f = roi_facts(row)
        if f is not None:
            by_sample[str(row["sample_id"])].append(f)
    ctx_by_sample = {str(row["sample_id"]): row for row in context}
    facts_by_sample = {str(row["sample_id"]): row for row in image_facts_rows}
    out = []
    for row in images:
        sid = str(row["sample_id"])
        img = image_facts(row, facts_by_sample.get(sid), by_sample.get(sid, ()))
        ctx = ctx_by_sample.get(sid) or {}
        found = []
        ids = ctx.get("passage_ids") or []
        scores = ctx.get("scores") or []
        corpora = ctx.get("corpora") or []
        titles = ctx.get("titles") or []
        for j, pid in enumerate(ids[:top_k]):
            base = passages.get(pid)
            found.append(Passage(
                passage_id=pid,
                score=float(scores[j]) if j < len(scores) and scores[j] is not None else 0.0,
                corpus=corpora[j] if j < len(corpora) else (base.corpus if base else ""),
                title=(base.title if base else "") or (titles[j] if j < len(titles) else ""),
                text=base.text if base else "",
                meta=base.meta if base else (),
            ))
        out.append(SampleFacts(image=img, rois=tuple(by_sample.get(sid, ())), passages=tuple(found)))
    return out
