"""Table rows (images, rois, context, passages) -> one :class:`SampleFacts` per image.

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

from medtrinity_assets.generation.sample_facts import ImageFacts, Passage, SampleFacts
from medtrinity_assets.roi.facts import RoiFacts
from medtrinity_assets.vocabulary import humanise

UNKNOWN = {"", "unknown", "none", "null", "nan"}


def _s(value: Any) -> str:
    """A fact as clean text; unknown markers become ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = humanise(str(value)) if isinstance(value, str) else str(value)
    return "" if text.lower() in UNKNOWN else text


def image_facts(row: dict[str, Any]) -> ImageFacts:
    return ImageFacts(
        sample_id=str(row["sample_id"]),
        source=str(row.get("source") or ""),
        modality=str(row.get("modality") or "").strip().upper(),
        organ=_s(row.get("organ")),
        disease=_s(row.get("disease")),
        labels=tuple(str(x) for x in (row.get("labels") or []) if x),
        axis=str(row.get("axis") or ""),
        window=str(row.get("window") or ""),
        caption_in=str(row.get("caption_in") or ""),
        image_path=str(row.get("image_path") or ""),
        image_sha256=str(row.get("image_sha256") or ""),
        width=int(row.get("width") or 0),
        height=int(row.get("height") or 0),
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
        cols = [c for c in ("passage_id", "title", "text") if c in pq.read_schema(path).names]
        table = pq.read_table(path, columns=cols)
        table = table.filter(pc.is_in(table["passage_id"], value_set=pa.array(sorted(ids), pa.string())))
        for row in table.to_pylist():
            title = str(row.get("title") or "")
            text = str(row.get("text") or "")
            if title and text.startswith(title):  # chunks are embedded with their title prefixed
                text = text[len(title):].lstrip(" :.\n-—")
            out[row["passage_id"]] = Passage(row["passage_id"], 0.0, corpus, title, text)
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
) -> list[SampleFacts]:
    """Join the three tables on sample_id (images drive: one SampleFacts per image row)."""
    by_sample: dict[str, list[RoiFacts]] = defaultdict(list)
    for row in rois:
        f = roi_facts(row)
        if f is not None:
            by_sample[str(row["sample_id"])].append(f)
    ctx_by_sample = {str(row["sample_id"]): row for row in context}
    out = []
    for row in images:
        img = image_facts(row)
        ctx = ctx_by_sample.get(img.sample_id) or {}
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
            ))
        out.append(SampleFacts(image=img, rois=tuple(by_sample.get(img.sample_id, ())), passages=tuple(found)))
    return out
