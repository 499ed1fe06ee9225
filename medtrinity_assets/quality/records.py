"""Arrow schemas of the quality tables: near-duplicate groups and evaluation-set leaks (one row per image)."""

import pyarrow as pa

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
