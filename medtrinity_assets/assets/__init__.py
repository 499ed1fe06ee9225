"""The Dagster layer: one module per stage (ingest, rois, knowledge, triplets, quality, exports).

Each stage module declares its assets (in the asset group named by its ``STAGE``), their checks and
the stage's sensors, and exposes them as ``defs``; :mod:`medtrinity_assets.definitions` merges them.
"""

import warnings

from dagster import BetaWarning, PreviewWarning

# Partitioned asset checks (one evaluation per source x shard, shown per partition in the UI) are a
# Dagster "preview" feature in 1.13; we rely on them knowingly, so their notice is not repeated at
# every import of the code location.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=PreviewWarning)
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)
