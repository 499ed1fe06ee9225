"""Arrow schemas of the ingest tables: source manifest, images, quarantine.

Later stages keep their own schemas beside their code (``roi/records.py``, ``knowledge/records.py``,
``generation/records.py``); this module holds the ones every stage reads.

Conventions shared by every table:
- ``*_key`` columns are salted hashes (see :mod:`medtrinity_assets.deid`); raw identifiers never appear.
- ``*_path`` columns are relative to ``data_root`` (blobs are content-addressed).
- ``rel_path`` is the operator's provenance (path inside the source folder with header identifiers
  scrubbed); it lives in internal tables only, never in exports.
- JSON-valued columns end in ``_json``; they hold small dicts/lists that vary by source.
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
        ("rel_path", pa.string()),  # scrubbed, first file of the item
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
        ("rel_path", pa.string()),
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
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("rel_path", pa.string()),  # relative to the source root, scrubbed
        ("stage", pa.string()),  # scan | load | preprocess | roi | ...
        ("reason", pa.string()),  # sentence for a person: what is wrong and what to do
        ("error_class", pa.string()),  # empty_file | truncated | not_dicom | no_pixel_data | ...
    ]
)
