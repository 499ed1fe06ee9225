"""Each asset's ``code_version``: a fingerprint of exactly the configuration that shapes its output.

Dagster marks a partition stale in the UI when its asset's code version differs from the one recorded
with the partition, or when an input's data version changed since. The code versions here are built
from the same fingerprints the targeted-rerun sensors compare (:mod:`medtrinity_assets.input_versions`):
the ``rois`` settings (``model_update_sensor``), the ``generator`` settings and the prompt template's
hash (``generator_change_sensor``). Model versions and weight digests reach the ROI stage through the
data version of ``expert_models`` (per source: the models that may apply to it), the encoder through
the data version of ``knowledge_encoder``, so a model or encoder change marks only what depends on it.

Settings that change how fast, not what (workers, device, batch sizes, concurrency, retries) are left
out. The code location reads them when it loads: after editing the YAML, reload it (``dagster dev``
reloads on restart; the UI's Deployment page has a Reload button) and the UI shows what is now stale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

from medtrinity_assets.input_versions import fingerprint, generator_versions, rois_settings_version

log = logging.getLogger(__name__)

# Bump when the code of an asset changes what it writes for the same configuration.
CODE_REVISION = "1"

_SPEED_ONLY = {"workers", "device", "batch_size", "concurrency", "timeout_s", "max_retries", "backoff_s",
               "max_backoff_s", "chunk_size", "corpora", "api_key_env"}


def _section(cfg, name: str, *, only: tuple[str, ...] | None = None) -> dict[str, Any]:
    values = getattr(cfg, name).model_dump(mode="json")
    values = {k: v for k, v in values.items() if k not in _SPEED_ONLY}
    return {k: v for k, v in values.items() if k in only} if only is not None else values


def _file_digest(path: Path | None) -> str:
    if path is None or not Path(path).is_file():
        return "none"
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def inputs_by_asset(cfg) -> dict[str, Any]:
    """What each asset's output depends on in the configuration (before hashing)."""
    knowledge = _section(cfg, "knowledge")
    quality = _section(cfg, "quality")
    return {
        "source_manifest": {"shards": cfg.shards},
        "images": {"shards": cfg.shards, "max_side": cfg.max_side, "context_slices": cfg.context_slices,
                   "ingest": _section(cfg, "ingest")},
        "lesion_model": {"lesion_model": dataclasses.asdict(cfg.rois.lesion_model)},
        "expert_models": {"registry": _file_digest(cfg.models_file)},
        "rois": rois_settings_version(cfg),
        "knowledge_corpus": {k: knowledge.get(k) for k in ("encoder", "chunk_tokens", "overlap")},
        "knowledge_index": {k: v for k, v in knowledge.items() if k not in ("top_k", "chunk_tokens", "overlap")},
        "retrieved_passages": {"top_k": knowledge.get("top_k")},
        "triplets": generator_versions(cfg),
        "near_duplicates": {**{k: v for k, v in quality.items() if k.startswith(("dedup_", "leakage_"))},
                            "eval_hashes": _file_digest(cfg.eval_hashes)},
        "exports": {"quality": quality, "exports": _section(cfg, "exports")},
        "dataset_exports": {"exports": _section(cfg, "exports")},
        "dataset_card": {"exports": _section(cfg, "exports"), "quality": quality},
    }


def code_versions(cfg) -> dict[str, str]:
    """asset name (``exports`` for every ``export_<format>``) -> code version."""
    return {name: f"{CODE_REVISION}-{fingerprint(value)}" for name, value in inputs_by_asset(cfg).items()}


def _active() -> dict[str, str]:
    from medtrinity_assets.settings import active_config

    try:
        return code_versions(active_config())
    except Exception as exc:  # a broken YAML still loads the UI (without code versions); the run reports it
        log.warning("no code versions: the configuration could not be read (%s)", exc)
        return {}


_ACTIVE: dict[str, str] | None = None


def code_version(asset_name: str) -> str | None:
    """The code version of an asset under the configuration the code location loaded (None without one)."""
    global _ACTIVE
    if _ACTIVE is None:
        _ACTIVE = _active()
    return _ACTIVE.get(asset_name)

