"""The one Definitions object of the code location.

Each stage module under ``assets/`` (and ``checks``, ``schedules``, ``sensors``) contributes its
assets and checks (found by Dagster's loaders) and optional module-level lists ``JOBS``,
``SCHEDULES``, ``SENSORS`` and a dict ``RESOURCES``.
"""

from __future__ import annotations

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from medtrinity_assets import checks, schedules, sensors
from medtrinity_assets.assets import exports, ingest, knowledge, quality, rois, triplets
from medtrinity_assets.resources import default_pipeline_resource

_ASSET_MODULES = [ingest, rois, knowledge, triplets, quality, exports]
_ALL_MODULES = [*_ASSET_MODULES, checks, schedules, sensors]


def _collect(name: str) -> list:
    out: list = []
    for mod in _ALL_MODULES:
        out.extend(getattr(mod, name, []))
    return out


def all_resources() -> dict:
    """Every resource the stages declare, keyed as the assets ask for them (also used by the CLI runner)."""
    res: dict = {"pipeline": default_pipeline_resource()}
    for mod in _ALL_MODULES:
        res.update(getattr(mod, "RESOURCES", {}))
    return res


defs = Definitions(
    assets=load_assets_from_modules(_ASSET_MODULES),
    asset_checks=load_asset_checks_from_modules(_ALL_MODULES),
    jobs=_collect("JOBS"),
    schedules=_collect("SCHEDULES"),
    sensors=_collect("SENSORS"),
    resources=all_resources(),
)
