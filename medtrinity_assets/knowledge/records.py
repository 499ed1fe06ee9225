"""Arrow schemas of the knowledge tables: ``passages`` (one row per chunk) and ``context`` (one row per sample).

Embeddings are not stored in ``passages``: they live in the corpus index under ``knowledge/<corpus>/``,
whose row order matches that folder's own ``passages.parquet``; the table here is for people and SQL.
"""

from __future__ import annotations

import pyarrow as pa

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

CONTEXT_SCHEMA = pa.schema(
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
