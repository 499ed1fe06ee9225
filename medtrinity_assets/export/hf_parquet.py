"""Hugging Face Parquet: MedTrinity's columns (``id``, ``image``, ``caption``) plus ROIs, attributes
and provenance, with the image bytes embedded.

``image`` is the struct ``{bytes, path}`` that the ``datasets`` Image feature stores; the schema's
``huggingface`` metadata declares it so ``datasets.load_dataset("parquet", data_files=...)`` decodes
it to a PIL image. One file per split so that ``data_files={"train": ".../train.parquet", ...}`` works.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from medtrinity_assets.export.samples import ATTRIBUTE_FIELDS, ExportSample
from medtrinity_assets.storage import write_table

ROI_TYPE = pa.struct(
    [
        ("roi_id", pa.string()),
        ("label", pa.string()),
        ("origin", pa.string()),
        ("confidence", pa.float64()),
        ("bbox", pa.list_(pa.float64())),
        ("mask_rle", pa.struct([("size", pa.list_(pa.int32())), ("counts", pa.string())])),
        ("area_fraction", pa.float64()),
        ("side", pa.string()),
        ("size_class", pa.string()),
        ("intensity", pa.string()),
        ("texture", pa.string()),
        ("position", pa.string()),
        ("kind", pa.string()),
        ("region", pa.string()),
        ("shape", pa.string()),
        ("margin", pa.string()),
    ]
)
DUPLICATE_TYPE = pa.struct([("sample_id", pa.string()), ("source", pa.string()), ("split", pa.string()),
                            ("distance", pa.int32())])

HF_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("caption", pa.string()),
        ("coarse_caption", pa.string()),
        ("modality", pa.string()),
        ("organ", pa.string()),
        ("disease", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("split", pa.string()),
        ("source", pa.string()),
        ("licence", pa.string()),
        ("subject_key", pa.string()),
        ("volume_ref", pa.string()),
        ("slice_index", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("image_sha256", pa.string()),
        ("rois", pa.list_(ROI_TYPE)),
        ("attributes", pa.struct([(k, pa.string()) for k in ATTRIBUTE_FIELDS])),
        ("generator", pa.struct([("backend", pa.string()), ("model", pa.string()), ("version", pa.string())])),
        ("prompt_sha256", pa.string()),
        ("duplicates", pa.list_(DUPLICATE_TYPE)),
    ]
)

_VALUE_TYPES = {pa.string(): "string", pa.int32(): "int32", pa.float64(): "float64"}


def _features() -> dict:
    """``datasets`` feature declarations: the Image feature plus the flat columns (nested ones are
    inferred by ``datasets`` from the Arrow types, which keeps the file readable across versions)."""
    feats: dict = {"image": {"_type": "Image"}}
    for f in HF_SCHEMA:
        if f.type in _VALUE_TYPES:
            feats[f.name] = {"dtype": _VALUE_TYPES[f.type], "_type": "Value"}
    return feats


def hf_schema() -> pa.Schema:
    meta = {"huggingface": json.dumps({"info": {"features": _features()}})}
    return HF_SCHEMA.with_metadata(meta)


def _row(s: ExportSample) -> dict:
    return {
        "id": s.id,
        "image": {"bytes": s.image_bytes, "path": f"{s.key}.png"},
        "caption": s.caption,
        "coarse_caption": s.coarse_caption,
        "modality": s.modality,
        "organ": s.organ,
        "disease": s.disease,
        "labels": s.labels,
        "split": s.split,
        "source": s.source,
        "licence": s.licence,
        "subject_key": s.subject_key,
        "volume_ref": s.volume_ref,
        "slice_index": s.slice_index,
        "width": s.width,
        "height": s.height,
        "image_sha256": s.image_sha256,
        "rois": s.rois,
        "attributes": {k: s.attributes.get(k, "") for k in ATTRIBUTE_FIELDS},
        "generator": s.generator,
        "prompt_sha256": s.prompt_sha256,
        "duplicates": [{k: d.get(k) for k in ("sample_id", "source", "split", "distance")} for d in s.duplicates],
    }


def write_hf_parquet(samples: list[ExportSample], folder: Path) -> dict[str, int]:
    """One Parquet per split present (``train.parquet`` ...); returns rows per file."""
    schema = hf_schema()
    by_split: dict[str, list[dict]] = {}
    for s in samples:
        by_split.setdefault(s.split or "train", []).append(_row(s))
    counts = {}
    for split, rows in sorted(by_split.items()):
        table = pa.Table.from_pylist(rows, schema=schema)
        write_table(Path(folder) / f"{split}.parquet", table)
        counts[f"{split}.parquet"] = len(rows)
    return counts
