"""Partitions of the asset graph.

- ``source``: one dynamic partition per entry of the sources YAML (a sensor adds new ones).
- ``shard``: a fixed number of shards; a sample's shard is a stable hash of its subject key.
- ``source_shard``: source x shard, for images, rois, context and triplets.
- ``corpus``: one dynamic partition per knowledge corpus.
"""

from __future__ import annotations

import warnings

from dagster import (
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    StaticPartitionsDefinition,
)

from medtrinity_assets.deid import shard_name
from medtrinity_assets.settings import shard_count

SOURCE = "source"
SHARD = "shard"

source_partitions = DynamicPartitionsDefinition(name=SOURCE)
corpus_partitions = DynamicPartitionsDefinition(name="corpus")
SHARDS = [shard_name(i) for i in range(shard_count())]
shard_partitions = StaticPartitionsDefinition(SHARDS)
source_shard_partitions = MultiPartitionsDefinition({SOURCE: source_partitions, SHARD: shard_partitions})

with warnings.catch_warnings():  # the mapping is marked beta; it is the documented way to fan in one dimension
    warnings.simplefilter("ignore")
    # source_manifest[source] -> images[source x shard]
    source_to_source_shard = MultiToSingleDimensionPartitionMapping(partition_dimension_name=SOURCE)
    # triplets[source x shard] -> exports[shard]
    source_shard_to_shard = MultiToSingleDimensionPartitionMapping(partition_dimension_name=SHARD)


def source_shard_key(source: str, shard: str) -> MultiPartitionKey:
    return MultiPartitionKey({SOURCE: source, SHARD: shard})


def split_key(partition_key) -> tuple[str, str]:
    """(source, shard) of a source_shard partition key (a MultiPartitionKey or its 'shard|source' string)."""
    if isinstance(partition_key, MultiPartitionKey):
        d = partition_key.keys_by_dimension
    else:
        d = source_shard_partitions.get_partition_key_from_str(str(partition_key)).keys_by_dimension
    return d[SOURCE], d[SHARD]
