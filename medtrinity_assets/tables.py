"""Arrow schemas of every table the pipeline writes, in pipeline order, and the JSON-column helper.

One file answers "which columns does table X have": manifest, images and quarantine (ingest), rois
and image_facts (ROI stage), passages and context (knowledge), triplets (generation), near_duplicates and eval_leaks
(quality). Pure pyarrow: every stage imports it, it imports nothing of the pipeline.

Conventions shared by every table:
- ``*_key`` columns are salted hashes (see :mod:`medtrinity_assets.deid`); raw identifiers never appear.
- ``*_path`` columns are relative to ``data_root`` (blobs are content-addressed).
- ``rel_path`` holds a salted *file key* (``fil-…``), never a path: folder and file names can hold
  names. The key -> path lookup is the private table ``private/paths/source=<name>/`` (see
  :mod:`medtrinity_assets.deid.paths`), never exported, previewed or logged.
- JSON-valued columns end in ``_json``; they hold small dicts/lists that vary by source.
- ROI rows keep their origin (``ground_truth`` or ``expert:<name>@<version>``) so a reader can tell a
  radiologist's contour from a model's guess; a row with ``status='error'`` stands for an item that
  could not be turned into ROIs (``error`` says why and what to do).
- Embeddings are not in ``passages``: they live in the corpus index under ``knowledge/<corpus>/``.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa


def json_or_value(value: Any) -> Any:
    """A ``*_json`` text column back to its object; anything else (or invalid JSON) unchanged."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value

MANIFEST_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("item_key", pa.string()),  # stable id of the input item (hash of source + scrubbed locator)
        ("kind", pa.string()),  # dicom_series | dicom_file | dicom_seg | dicom_rtstruct | nifti | image | ...
        ("rel_path", pa.string()),  # file key of the item's first file (the path is in the private table)
        ("n_files", pa.int32()),
        ("n_frames", pa.int32()),  # slices/frames the header announces (1 for 2D)
        ("subject_key", pa.string()),
        ("study_key", pa.string()),
        ("series_key", pa.string()),
        ("modality", pa.string()),
        ("shard", pa.string()),
    ]
)

IMAGE_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("source", pa.string()),
        ("item_key", pa.string()),
        ("subject_key", pa.string()),
        ("study_key", pa.string()),
        ("series_key", pa.string()),
        ("volume_ref", pa.string()),  # item_key of the volume a slice came from ('' for 2D inputs)
        ("rel_path", pa.string()),  # file key (see the module doc)
        ("slice_index", pa.int32()),  # -1 for 2D inputs
        ("n_slices", pa.int32()),
        ("axis", pa.string()),  # axial | none
        ("neighbour_slices", pa.list_(pa.int32())),
        ("modality", pa.string()),  # CT | MR | CR | DX | US | MG | XA | PT | NM | OT | FUNDUS | HISTO | DERM ...
        ("organ", pa.string()),
        ("disease", pa.string()),
        ("labels", pa.list_(pa.string())),  # class labels of the image (CSV columns, caption keywords ...)
        ("caption_in", pa.string()),  # caption shipped with the source (captions format), else null
        ("image_path", pa.string()),  # 8-bit PNG (grey or RGB), content-addressed
        ("image_sha256", pa.string()),
        ("values_path", pa.string()),  # .npy float32 of physical values (HU for CT) on the PNG grid; null for RGB
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("orig_width", pa.int32()),
        ("orig_height", pa.int32()),
        ("pixel_spacing", pa.list_(pa.float64())),  # [row_mm, col_mm] on the PNG grid; NaN when unknown
        ("slice_thickness", pa.float64()),
        ("col_toward", pa.string()),  # patient direction of increasing column: L R A P S I or '' (unknown)
        ("row_toward", pa.string()),
        ("window", pa.string()),  # e.g. ct:lung(-600/1500), percentile(0.5-99.5), rgb
        ("window_center", pa.float64()),
        ("window_width", pa.float64()),
        ("phash", pa.string()),  # 64-bit perceptual hash, hex
        ("gt_mask_path", pa.string()),  # uint8/uint16 label-map PNG on the image grid (ground truth), or null
        ("gt_label_names_json", pa.string()),  # {"1": "liver", ...} for gt_mask_path values
        ("gt_boxes_json", pa.string()),  # [{"label": str, "bbox": [x0,y0,x1,y1] normalised}] (COCO sources)
        ("meta_json", pa.string()),  # allow-listed acquisition metadata
        ("licence", pa.string()),
        ("split", pa.string()),  # train | validation | test (by subject)
        ("shard", pa.string()),
        # de-identification record: {"ocr": "<engine> <version>" | null, "policy", "redacted_boxes":
        # [{"bbox": normalised xyxy, "kind": "id"|"date"|...}], "text_fields": {field: {kind: n}}, "burned_in": bool|null} -- no text
        ("deid_json", pa.string()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("rel_path", pa.string()),  # file key of the input (the path is in the private table)
        ("stage", pa.string()),  # scan | load | preprocess | roi | ...
        ("reason", pa.string()),  # sentence for a person: what is wrong and what to do
        ("error_class", pa.string()),  # empty_file | truncated | not_dicom | no_pixel_data | ...
        ("severity", pa.string()),  # error: the input was left out | warning: kept, flagged (e.g. a series gap)
    ]
)


# ---- rois ----

ROI_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("source", pa.string()),
        ("shard", pa.string()),
        ("roi_id", pa.string()),  # stable: hash of sample, origin, label, component
        ("label", pa.string()),
        ("kind", pa.string()),  # anatomy | finding
        ("origin", pa.string()),  # ground_truth | expert:<name>@<version>
        ("model_sha256", pa.string()),  # digest of the expert's weights (its code for built-ins); '' for ground truth
        ("confidence", pa.float64()),  # 1.0 for ground truth; mean probability (models) or the registry's measured score (rules)
        ("component", pa.int32()),  # index of the connected component within (sample, origin, label)
        ("n_components", pa.int32()),
        ("bbox", pa.list_(pa.float64())),  # normalised [x0, y0, x1, y1]
        ("mask_rle", pa.struct([("size", pa.list_(pa.int32())), ("counts", pa.string())])),  # COCO RLE
        ("area_pixels", pa.int64()),
        ("area_fraction", pa.float64()),  # of the image
        ("area_mm2", pa.float64()),  # null when the spacing is unknown
        ("centroid", pa.list_(pa.float64())),  # normalised [x, y]
        ("side", pa.string()),  # left | right | midline | unknown (patient side)
        ("vertical_position", pa.string()),  # upper | middle | lower (image rows); superior|inferior on coronal
        ("ap_position", pa.string()),  # anterior | central | posterior | unknown
        ("region", pa.string()),  # reference organ that contains or touches the ROI, '' when none
        ("size_class", pa.string()),  # small | medium | large | very_large
        ("equivalent_diameter_mm", pa.float64()),
        ("long_axis_mm", pa.float64()),  # longest diameter in the image plane; null when the spacing is unknown
        ("short_axis_mm", pa.float64()),  # diameter perpendicular to it; null when the spacing is unknown
        ("intensity", pa.string()),  # hyper/hypo/isodense (CT), -intense (MR), -echoic (US), brighter/darker/similar (others)
        ("contrast", pa.float64()),  # HU difference (calibrated CT), z-score (others) against the surrounding ring
        ("contrast_unit", pa.string()),  # HU | z
        ("mean_value", pa.float64()),  # inside the ROI, in value_unit
        ("surround_value", pa.float64()),  # of the surrounding ring, in value_unit
        ("value_unit", pa.string()),  # HU (calibrated CT) | signal (MR) | grey (8-bit sources, photographs, US, X-ray)
        ("attenuation", pa.string()),  # calibrated CT only: air|ground_glass|fat|fluid|soft_tissue|calcified, else ''
        ("texture", pa.string()),  # homogeneous | heterogeneous
        ("texture_score", pa.float64()),  # std inside / image noise
        ("glcm_homogeneity", pa.float64()),
        ("shape", pa.string()),  # round | oval | lobulated | irregular
        ("circularity", pa.float64()),
        ("solidity", pa.float64()),
        ("margin", pa.string()),  # well_defined | ill_defined
        ("edge_sharpness", pa.float64()),  # boundary gradient / |contrast|
        ("relations_json", pa.string()),  # inside/adjacent organs, distances, other lesions
        ("status", pa.string()),  # ok | error
        ("error", pa.string()),  # reason for a person when status == 'error'
    ]
)

ROI_KINDS = ("anatomy", "finding")

# One row per image of a ``rois`` partition, written beside the rois table by the same stage: what the
# image shows as a whole. ``text`` words it; the card reads coverage from it. ``body_region`` is one
# of BODY_REGIONS or '' when no expert could tell and the metadata says nothing usable.
BODY_REGIONS = ("head", "neck", "chest", "abdomen", "pelvis", "extremity")
IMAGE_FACTS_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("source", pa.string()),
        ("shard", pa.string()),
        ("modality", pa.string()),  # the images row's modality (coverage is reported per modality)
        ("body_region", pa.string()),  # head | neck | chest | abdomen | pelvis | extremity | '' (unknown)
        ("body_region_origin", pa.string()),  # expert:<name>@<version> | metadata | '' (unknown)
        ("body_region_detail", pa.string()),  # finer level when measured (e.g. 'lower chest'), else ''
        ("organs", pa.list_(pa.string())),  # organ labels with >= 1 ROI on this image (not body/fat/air/field of view)
        ("metadata_organ", pa.string()),  # the images row's organ (source config or header), '' when none
        ("agrees_with_metadata", pa.bool_()),  # body_region vs metadata_organ's region; null when either is unknown
        ("measurements_json", pa.string()),  # image-level measurements, e.g. {"cardiothoracic_ratio": 0.47}
        ("experts", pa.list_(pa.string())),  # origins (expert:<name>@<version> | ground_truth) that produced ROIs or facts here
        ("status", pa.string()),  # ok | no_expert (no model applies / roi: none) | error
        ("error", pa.string()),  # why, for a person, when status != ok (and notes like 'not a chest radiograph')
    ]
)


# ---- knowledge ----

PASSAGE_SCHEMA = pa.schema(
    [
        ("corpus", pa.string()),
        ("passage_id", pa.string()),  # <corpus>:<doc_id>#<chunk_index>, unique across corpora
        ("doc_id", pa.string()),  # id of the entry/article the chunk came from
        ("chunk_index", pa.int32()),
        ("title", pa.string()),
        ("text", pa.string()),  # the chunk as it is embedded (title prefixed)
        ("n_tokens", pa.int32()),  # tokens of the chunk body under the chunker's tokenizer
        ("meta_json", pa.string()),  # small per-document facts: organ, modalities, finding (core corpus)
    ]
)

RETRIEVED_PASSAGES_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("source", pa.string()),
        ("shard", pa.string()),
        ("query", pa.string()),  # the retrieval query built from the sample's facts
        ("passage_ids", pa.list_(pa.string())),  # best first
        ("corpora", pa.list_(pa.string())),
        ("titles", pa.list_(pa.string())),
        ("scores", pa.list_(pa.float32())),  # cosine similarity of each passage to its finding's query
        ("encoder", pa.string()),  # encoder id the scores came from
    ]
)


# ---- generation ----

ATTRIBUTES = ("modality", "organ", "roi_location", "texture", "relations")

ATTRIBUTES_TYPE = pa.struct([(name, pa.string()) for name in ATTRIBUTES])
GENERATOR_TYPE = pa.struct([("backend", pa.string()), ("model", pa.string()), ("version", pa.string())])
PROVENANCE_TYPE = pa.struct([
    ("source", pa.string()),
    ("volume_ref", pa.string()),
    ("slice_index", pa.int32()),
    ("original_label", pa.list_(pa.string())),  # the source's own labels, as ingested
    ("licence", pa.string()),
    ("split", pa.string()),
])
PASSAGE_REF_TYPE = pa.struct([("passage_id", pa.string()), ("corpus", pa.string()), ("score", pa.float64())])

TRIPLET_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("source", pa.string()),
        ("image_path", pa.string()),
        ("image_sha256", pa.string()),
        ("roi_ids", pa.list_(pa.string())),
        ("rois_json", pa.string()),  # compact facts of the ROIs the description used
        ("coarse_caption", pa.string()),
        ("coarse_json", pa.string()),  # structured coarse-caption fields
        ("passages", pa.list_(PASSAGE_REF_TYPE)),
        ("description", pa.string()),  # null when status is failed: never a fabricated text
        ("attributes", ATTRIBUTES_TYPE),
        ("clauses_json", pa.string()),  # [{"field", "text", "source"}]: every clause traceable to a fact
        ("generator", GENERATOR_TYPE),
        ("generator_id", pa.string()),
        ("prompt_sha256", pa.string()),
        ("status", pa.string()),  # ok | failed
        ("failure_reason", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("latency_s", pa.float64()),
        ("cached", pa.bool_()),
        # the image's facts the description is held to (quality checks read these)
        ("modality", pa.string()),
        ("organ", pa.string()),
        ("disease", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("body_region", pa.string()),  # the region the description names: what the slice shows, else the metadata's
        ("body_region_origin", pa.string()),  # expert:<name>@<version> | anatomy | metadata | '' (unknown)
        ("agrees_with_metadata", pa.bool_()),  # that region vs the metadata organ; null when either is unknown
        ("laterality", pa.string()),  # left | right when the image is of one side (header laterality), else ''
        ("provenance", PROVENANCE_TYPE),
        ("shard", pa.string()),
    ]
)


# ---- quality ----

DUPLICATE_SCHEMA = pa.schema(
    [
        ("group_id", pa.string()),  # the representative's sample_id
        ("sample_id", pa.string()),
        ("source", pa.string()),
        ("split", pa.string()),
        ("is_representative", pa.bool_()),
        ("distance", pa.int32()),  # Hamming bits to the representative
        ("cross_source", pa.bool_()),
        ("cross_split", pa.bool_()),
    ]
)

LEAK_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("source", pa.string()),
        ("distance", pa.int32()),  # Hamming bits to the nearest evaluation hash
    ]
)
