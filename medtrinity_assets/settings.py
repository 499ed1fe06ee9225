"""The active configuration for the Dagster code location (read once per process)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from medtrinity_assets.config import PipelineConfig, default_config_path, load_config


@functools.lru_cache(maxsize=8)
def _load(path: str) -> PipelineConfig:
    return load_config(path, check_files=False)  # the UI loads while a source folder is unmounted; ingest checks it


def active_config_path() -> Path:
    return default_config_path().resolve()


def active_config() -> PipelineConfig:
    return _load(str(active_config_path()))


def shard_count() -> int:
    """$MEDTRINITY_SHARDS, else the active config's ``shards``, else 4 (fixed when definitions load)."""
    env = os.environ.get("MEDTRINITY_SHARDS")
    if env:
        return int(env)
    try:
        return active_config().shards
    except Exception:  # a broken or absent config is reported by the resource, not at import time
        return 4
