"""Dagster resources: thin handles on the configuration and the storage layout.

Stage-specific resources (expert-model registry, embedder, generator) live beside their assets and
are added to the Definitions through each asset module's ``RESOURCES`` dict.
"""

from __future__ import annotations

from dagster import ConfigurableResource

from medtrinity_assets.config import PipelineConfig
from medtrinity_assets.settings import _load, active_config_path
from medtrinity_assets.storage import DataLayout


class PipelineResource(ConfigurableResource):
    """The sources YAML in use and the data_root it names."""

    config_path: str

    def config(self) -> PipelineConfig:
        return _load(self.config_path)

    def layout(self) -> DataLayout:
        return DataLayout(self.config().data_root)

    def salt(self) -> str:
        cfg = self.config()
        return self.layout().salt(cfg.salt)


def default_pipeline_resource() -> PipelineResource:
    return PipelineResource(config_path=str(active_config_path()))
