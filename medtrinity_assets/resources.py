"""Dagster resources: the configuration in use, the sentence encoder and the description generator.

``PipelineResource`` is the root: the sources YAML and the ``data_root`` it names. The embedder and the
generator nest it (Dagster initialises the nested resource with its parent), so an asset asks for
``generator`` alone and gets settings that already include the YAML's ``generator:`` section. The
generator's backend is opened on first use in a step and closed by Dagster when the step's resources
are torn down (``teardown_after_execution``), whatever the step's outcome.
"""

from __future__ import annotations

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr, ValidationError

from medtrinity_assets.config import PipelineConfig
from medtrinity_assets.config.sections import GeneratorSection
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


class EmbedderResource(ConfigurableResource):
    """Which sentence encoder to use: ``encoder`` overrides ``knowledge.encoder`` of the sources YAML when set."""

    pipeline: PipelineResource
    encoder: str = ""

    def settings(self):
        from medtrinity_assets.knowledge.settings import settings_from_config

        return settings_from_config(self.pipeline.config(), self.encoder)

    def encoder_id(self) -> str:
        from medtrinity_assets.knowledge.embedding import encoder_id, resolve_encoder

        return encoder_id(resolve_encoder(self.settings().encoder))

    def load(self):
        """The loaded encoder (cached per process by :func:`knowledge.embedding.load_encoder`)."""
        from medtrinity_assets.knowledge.embedding import load_encoder

        s = self.settings()
        return load_encoder(s.encoder, device=s.device, batch_size=s.batch_size)


class GeneratorResource(ConfigurableResource):
    """Which generator to use; empty fields fall back to the ``generator:`` section of the sources YAML."""

    pipeline: PipelineResource
    backend: str = ""
    model: str = ""
    base_url: str = ""
    model_dir: str = ""

    _opened: list = PrivateAttr(default_factory=list)

    def settings(self) -> GeneratorSection:
        """The typed ``generator`` section, with the fields this resource sets (e.g. in the launchpad) in its place;
        validated again, so an override that leaves a backend without what it needs fails here in one line."""
        section = self.pipeline.config().generator
        overrides = {key: getattr(self, key) for key in ("backend", "model", "base_url", "model_dir") if getattr(self, key)}
        if not overrides:
            return section
        try:
            return GeneratorSection.model_validate({**section.model_dump(exclude_unset=True), **overrides})
        except ValidationError as exc:
            raise ValueError(f"generator resource {overrides}: {'; '.join(e['msg'] for e in exc.errors())}") from None

    def open_backend(self):
        """The configured backend, opened for this step; Dagster closes it at teardown."""
        from medtrinity_assets.generation.backends import make_backend

        backend = make_backend(self.settings(), cache_dir=self.pipeline.layout().root / "cache" / "generation")
        self._opened.append(backend)
        return backend

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        while self._opened:
            backend = self._opened.pop()
            try:
                backend.close()
            except Exception as exc:  # a failing close must not hide the step's own outcome
                if context.log is not None:
                    context.log.warning(f"generator backend {getattr(backend, 'name', '?')} did not close: {exc}")


def default_resources(config_path: str | None = None) -> dict[str, ConfigurableResource]:
    """Every resource the stages ask for, on the sources YAML in use (or ``config_path``)."""
    pipeline = PipelineResource(config_path=str(config_path or active_config_path()))
    return {
        "pipeline": pipeline,
        "embedder": EmbedderResource(pipeline=pipeline),
        "generator": GeneratorResource(pipeline=pipeline),
    }
