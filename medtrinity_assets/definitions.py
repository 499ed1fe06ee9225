"""The one Definitions object of the code location.

The pipeline's stages are the modules listed in ``STAGES``, in the order data flows through them. Each
stage module declares its own assets (all in the asset group named by its ``STAGE``), asset checks and
sensors as a ``Definitions`` object (``defs``); they merge here with the jobs (:mod:`medtrinity_assets.jobs`),
the per-source schedules (:mod:`medtrinity_assets.schedules`) and the resources
(:mod:`medtrinity_assets.resources`). ``medtrinity run --stages`` selects these groups.
"""

from __future__ import annotations

from dagster import Definitions

from medtrinity_assets.assets import exports, ingest, knowledge, quality, rois, triplets
from medtrinity_assets.jobs import JOBS
from medtrinity_assets.resources import default_resources
from medtrinity_assets.schedules import SCHEDULES

STAGES = (ingest, rois, knowledge, triplets, quality, exports)
STAGE_NAMES = tuple(stage.STAGE for stage in STAGES)

defs = Definitions.merge(
    *(stage.defs for stage in STAGES),
    Definitions(jobs=JOBS, schedules=SCHEDULES, resources=default_resources()),
)
