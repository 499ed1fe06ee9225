"""Arrow schema of the ``rois`` table: one row per region of interest, facts as fields.

Every ROI keeps its origin (``ground_truth`` or ``expert:<name>@<version>``) so that a reader
can tell a radiologist's contour from a model's guess, and every fact is a column so that the
generation stage words facts instead of guessing them. A row with ``status='error'`` stands for
an item that could not be turned into ROIs; ``error`` says why and what to do.
"""

from __future__ import annotations

import pyarrow as pa

ROI_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("source", pa.string()),
        ("shard", pa.string()),
        ("roi_id", pa.string()),  # stable: hash of sample, origin, label, component
        ("label", pa.string()),
        ("kind", pa.string()),  # anatomy | finding
        ("origin", pa.string()),  # ground_truth | expert:<name>@<version>
        ("confidence", pa.float64()),  # 1.0 for ground truth; mean probability for models
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
        ("intensity", pa.string()),  # hyperdense|hypodense|isodense (CT), hyper/hypo/isointense (MR), brighter/darker/similar
        ("contrast", pa.float64()),  # HU difference (CT), z-score (MR/other) against the surrounding ring
        ("contrast_unit", pa.string()),  # HU | z
        ("mean_value", pa.float64()),
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
