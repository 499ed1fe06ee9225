"""Hugging Face Parquet: MedTrinity's columns (``id``, ``image``, ``caption``) plus ROIs, attributes
and provenance, with the image bytes embedded.

``image`` is the struct ``{bytes, path}`` that the ``datasets`` Image feature stores. A shard's part is one
file per split (``<split>.parquet``); the dataset folder links them as ``data/<split>-<shard>.parquet``,
so a split is the glob ``data/<split>-*.parquet`` that the card's ``configs`` name. The images stay
embedded (unlike the loose-file formats): a Parquet file with its pictures is what ``push_to_hub`` and
the dataset viewer expect, and it streams.

Conventions (documented in the card): ``rois[].bbox`` is normalised ``[x0, y0, x1, y1]`` in 0..1 of the
image width/height; ``rois[].mask_rle`` is COCO compressed RLE (``size`` = [height, width], column-major).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from medtrinity_assets.export.samples import ATTRIBUTE_FIELDS, ExportSample
from medtrinity_assets.storage import write_table

ROI_TYPE = pa.struct(
    [
        ("roi_id", pa.string()),
        ("label", pa.string()),
        ("kind", pa.string()),
        ("origin", pa.string()),
        ("confidence", pa.float64()),
        ("bbox", pa.list_(pa.float64())),
        ("mask_rle", pa.struct([("size", pa.list_(pa.int32())), ("counts", pa.string())])),
        ("area_fraction", pa.float64()),
        ("area_mm2", pa.float64()),
        ("diameter_mm", pa.float64()),
        ("centroid", pa.list_(pa.float64())),
        ("side", pa.string()),
        ("position", pa.string()),
        ("region", pa.string()),
        ("size_class", pa.string()),
        ("intensity", pa.string()),
        ("texture", pa.string()),
        ("shape", pa.string()),
        ("margin", pa.string()),
        ("relations_json", pa.string()),
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

# what each column holds, for the card's column documentation (one line each)
COLUMN_DOCS: dict[str, str] = {
    "id": "sample id (a hash; stable across reruns)",
    "image": "the 8-bit PNG slice or picture (decoded to a PIL image by `datasets`)",
    "caption": "the grounded description of the image and its regions of interest",
    "coarse_caption": "the short structured caption (modality, organ, labels) the description was built on",
    "modality": "acquisition modality code (CT, MR, CR/DX = X-ray, US, FUNDUS, HISTOLOGY ...)",
    "organ": "organ or body region the source gives for the image ('' when none)",
    "disease": "disease given by the source ('' when none)",
    "labels": "the source's own class labels for the image",
    "split": "train, validation or test, by subject (one patient never spans two splits)",
    "source": "name of the source the image came from (see Sources)",
    "licence": "licence of that source",
    "subject_key": "salted hash of the subject (patient); groups the images of one subject",
    "volume_ref": "hash of the volume a slice came from ('' for 2D inputs)",
    "slice_index": "index of the slice in its volume (-1 for 2D inputs)",
    "width": "image width in pixels",
    "height": "image height in pixels",
    "image_sha256": "SHA-256 of the PNG bytes",
    "rois": "regions of interest: label, kind (finding or anatomy), origin (`ground_truth` or `expert:<model>@<version>`), "
            "confidence, bbox (normalised x0,y0,x1,y1), mask_rle (COCO RLE), area fraction, area in mm², "
            "equivalent diameter in mm, centroid (normalised x,y), patient side, position, containing organ, "
            "size class, intensity, texture, shape, margin, relations_json (organs containing / touching it, "
            "distances to the other findings)",
    "attributes": "the description's structured attributes: modality, organ, roi_location, texture, relations",
    "generator": "backend, model and version that wrote the description",
    "prompt_sha256": "SHA-256 of the prompt template",
    "duplicates": "near-duplicates of this image elsewhere in the inputs (not exported): sample id, source, split, "
                  "Hamming distance of the perceptual hash",
}

_VALUE_TYPES = {pa.string(): "string", pa.int32(): "int32", pa.int64(): "int64", pa.float64(): "float64",
                pa.bool_(): "bool", pa.binary(): "binary"}


def _features() -> dict:
    """``datasets`` feature declarations in the Parquet metadata: the Image feature plus the flat columns."""
    feats: dict = {"image": {"_type": "Image"}}
    for f in HF_SCHEMA:
        if f.type in _VALUE_TYPES:
            feats[f.name] = {"dtype": _VALUE_TYPES[f.type], "_type": "Value"}
    return feats


def hf_schema() -> pa.Schema:
    meta = {"huggingface": json.dumps({"info": {"features": _features()}})}
    return HF_SCHEMA.with_metadata(meta)


def _yaml_feature(t: pa.DataType) -> dict[str, Any]:
    if t in _VALUE_TYPES:
        return {"dtype": _VALUE_TYPES[t]}
    if pa.types.is_list(t):
        inner = _yaml_feature(t.value_type)
        return {"list": inner["dtype"] if list(inner) == ["dtype"] else inner["struct"]}
    if pa.types.is_struct(t):
        return {"struct": [{"name": f.name, **_yaml_feature(f.type)} for f in t]}
    raise TypeError(f"no datasets feature for Arrow type {t}")


def yaml_features() -> list[dict[str, Any]]:
    """The ``dataset_info.features`` list of the card's YAML (``list:`` reads in datasets 2.x to 5.x)."""
    out = []
    for f in HF_SCHEMA:
        out.append({"name": f.name, "dtype": "image"} if f.name == "image" else {"name": f.name, **_yaml_feature(f.type)})
    return out


def _roi(r: dict[str, Any]) -> dict[str, Any]:
    row = {f.name: r.get(f.name) for f in ROI_TYPE}
    row["relations_json"] = json.dumps(r.get("relations") or {}, sort_keys=True)
    return row


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
        "rois": [_roi(r) for r in s.rois],
        "attributes": {k: s.attributes.get(k, "") for k in ATTRIBUTE_FIELDS},
        "generator": s.generator,
        "prompt_sha256": s.prompt_sha256,
        "duplicates": [{k: d.get(k) for k in ("sample_id", "source", "split", "distance")} for d in s.duplicates],
    }


def write_part(samples: list[ExportSample], folder: Path, shard: str) -> dict[str, int]:
    """One Parquet per split present (``train.parquet`` ...), rows in id order; returns rows per file."""
    schema = hf_schema()
    by_split: dict[str, list[dict]] = {}
    for s in sorted(samples, key=lambda s: s.id):
        by_split.setdefault(s.split, []).append(_row(s))
    counts = {}
    for split, rows in sorted(by_split.items()):
        write_table(Path(folder) / f"{split}.parquet", pa.Table.from_pylist(rows, schema=schema))
        counts[f"{split}.parquet"] = len(rows)
    return counts


def dataset_files(part_folder: Path, shard: str) -> dict[str, Path]:
    """Dataset path -> part file: ``data/<split>-<shard>.parquet``."""
    return {f"data/{p.stem}-{shard}.parquet": p for p in sorted(Path(part_folder).glob("*.parquet"))}


def split_sizes(folder: Path) -> dict[str, dict[str, int]]:
    """Per split of a dataset folder: rows, file bytes and uncompressed bytes (from the Parquet footers)."""
    out: dict[str, dict[str, int]] = {}
    for f in sorted((Path(folder) / "data").glob("*.parquet")):
        split = f.name.rsplit("-", 1)[0]
        md = pq.ParquetFile(f).metadata
        entry = out.setdefault(split, {"rows": 0, "file_bytes": 0, "bytes": 0})
        entry["rows"] += md.num_rows
        entry["file_bytes"] += f.stat().st_size
        entry["bytes"] += sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    return out
