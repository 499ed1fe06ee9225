"""Recorded input versions: what a partition was built from, so that a change reruns only what it touches.

An asset that wants targeted reruns records, on every materialisation, the metadata entry
``input_versions``: a flat mapping ``name -> version`` of exactly the inputs that partition used
(``model:lesion_unet`` -> ``3@ab12..``, ``config:generator`` -> fingerprint, ...). A partition that
used no expert model records no ``model:`` entry, so a model update never touches it. A sensor
compares the recorded mapping with the current one (:func:`outdated_names`). The same fingerprints make
the assets' code versions (:mod:`medtrinity_assets.code_versions`), so the UI's staleness and the
sensors agree. Pure: no Dagster here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

INPUT_VERSIONS_KEY = "input_versions"

log = logging.getLogger(__name__)


def fingerprint(value: Any) -> str:
    """Stable short hash of any JSON-able value (key order does not matter)."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def config_versions(sections: Mapping[str, Any]) -> dict[str, str]:
    """``{'config:<section>': fingerprint}`` for configuration sections that shape an asset's output."""
    return {f"config:{name}": fingerprint(value or {}) for name, value in sections.items()}


def outdated_names(recorded: Mapping[str, str] | None, current: Mapping[str, str]) -> list[str]:
    """Names whose recorded version differs from the current one.

    Only names the partition recorded count (inputs it did not use cannot make it stale). A recorded
    name that no longer exists in ``current`` is left alone when the namespace it belongs to is absent
    from ``current`` altogether (the caller does not know about it), and counted as outdated when
    other names of the namespace are present (that input was removed or renamed).
    """
    if not recorded:
        return []
    namespaces = {n.split(":", 1)[0] for n in current}
    out: list[str] = []
    for name, version in sorted(recorded.items()):
        if name in current:
            if str(current[name]) != str(version):
                out.append(name)
        elif name.split(":", 1)[0] in namespaces:
            out.append(name)
    return out


def parse_recorded(value: Any) -> dict[str, str]:
    """The recorded mapping from a metadata value (a dict, a JSON string, or a Dagster JsonMetadataValue)."""
    data = getattr(value, "data", value)
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            return {}
    if not isinstance(data, Mapping):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def rois_settings_version(cfg) -> dict[str, str]:
    """Fingerprint of the settings that shape ROI rows (training settings excluded: they act through the model)."""
    section = {k: v for k, v in cfg.rois.explicit().items() if k != "lesion_model"}
    effective = cfg.rois.min_component_pixels or cfg.min_component_pixels  # the section overrides the top level
    return config_versions({"rois": {**section, "min_component_pixels": effective}})


def generator_versions(cfg, instance=None) -> dict[str, str]:
    """The generator's identity as triplets record it: the ``generator`` settings (backend, model,
    version, seed, ...) and the prompt template's hash (``prompt:<name>``). (``instance`` is unused: the
    signature of a targeted-rerun sensor's current versions.)"""
    from medtrinity_assets.generation.prompt import load_template

    versions = config_versions({"generator": cfg.generator.explicit()})  # what the YAML sets
    try:
        template = load_template(cfg.generator.prompt)
        versions[f"prompt:{template.name}"] = template.sha256[:16]
    except Exception as exc:  # a missing template fails the triplets run itself, with its own message
        log.warning("prompt template not readable (%s); comparing generator settings only", exc)
    return versions
