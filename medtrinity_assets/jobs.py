"""Every job of the code location, in the order ``medtrinity run`` launches them.

An asset job runs assets of one partitioning, so the pipeline is a short sequence of jobs:

- ``models_job``: train the built-in lesion model, resolve the expert-model registry (unpartitioned);
- ``knowledge_job`` [corpus]: read, chunk, embed and index one knowledge corpus;
- ``source_manifest_job`` [source]: rescan one source's folder;
- ``source_shard_job`` [source x shard]: everything made per sample for one partition, from ``images``
  to ``triplets`` (with their checks), in dependency order inside one run;
- ``near_duplicates_job``: the dataset-wide duplicate groups and evaluation-set leaks;
- ``exports_job`` [shard]: every export format's part of one shard;
- ``dataset_job``: the parts merged into the per-split dataset users train on, and its card.

Jobs select assets by key and group (this module imports no stage module, so the stage modules can
import it for their sensors). Where the steps of a run execute is a deployment choice
(:mod:`medtrinity_assets.executors`).
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from medtrinity_assets.executors import executor_from_env
from medtrinity_assets.partitions import corpus_partitions, shard_partitions, source_partitions, source_shard_partitions

# Everything built per sample from the images (source x shard), before the dataset-wide stages.
PER_SAMPLE_ASSETS = AssetSelection.assets("images").downstream() - AssetSelection.groups("quality", "exports")


def _job(name: str, selection: AssetSelection, description: str, partitions_def=None):
    return define_asset_job(name, selection=selection, partitions_def=partitions_def, description=description,
                            executor_def=executor_from_env())


models_job = _job("models_job", AssetSelection.assets("lesion_model", "expert_models"),
                  "Train the built-in lesion segmenter (when asked) and resolve every expert model of the registry.")
knowledge_job = _job("knowledge_job", AssetSelection.assets("knowledge_corpus", "knowledge_index"),
                     "Read, chunk, embed and index one knowledge corpus.", corpus_partitions)
source_manifest_job = _job("source_manifest_job", AssetSelection.assets("source_manifest"),
                           "Rescan one source (its manifest); the followup sensor then runs its source x shard partitions.",
                           source_partitions)
source_shard_job = _job("source_shard_job", PER_SAMPLE_ASSETS,
                        "Everything made per sample for one source x shard partition: images -> rois -> context -> triplets.",
                        source_shard_partitions)
near_duplicates_job = _job("near_duplicates_job", AssetSelection.assets("near_duplicates"),
                           "Dataset-wide near-duplicate groups and evaluation-set leaks (read by the exports and the card).")
DATASET_ASSETS = AssetSelection.assets("dataset_exports", "dataset_card")
exports_job = _job("exports_job", AssetSelection.groups("exports") - DATASET_ASSETS,
                   "Every export format's part of one shard, gated by the blocking checks of its triplet partitions.",
                   shard_partitions)
dataset_job = _job("dataset_job", DATASET_ASSETS,
                   "The export parts merged into the per-split dataset (exports/<format>/) and its dataset card.")

# The order `medtrinity run` follows: each job's assets only depend on assets of the jobs before it.
JOBS = [models_job, knowledge_job, source_manifest_job, source_shard_job, near_duplicates_job, exports_job, dataset_job]
