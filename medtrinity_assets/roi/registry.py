"""The expert-model registry: ``models.yaml`` entries resolved to a version and a weights digest.

Entry fields::

    name: lesion_seg            # [a-z0-9_]+
    kind: torchscript           # builtin | torchscript | monai_bundle
    path: "@models/lesion_seg"  # file or folder, relative to the YAML; '@models/' = <data_root>/models
    version: "1.0"              # optional when the path holds a registration.json or a bundle metadata.json
    sha256: ...                 # optional: the expected digest; a mismatch is an error for this model
    builtin: ct_anatomy         # kind builtin: which one (roi.builtin; see BUILTINS)
    applies_to: {modalities: [CT], organs: [abdomen]}   # empty list / missing = any
    labels: {1: lesion}         # output channel -> name (torch models)
    preprocess: {window: [-250, 250], size: [128, 128]}  # input scaling the model was trained with
    threshold: 0.5

A model folder written by the pipeline's own trainer holds ``registration.json`` (version, weights
file, digest, preprocessing, labels, metrics): the trainer registers a model by writing it. A
model that cannot be resolved (missing file, wrong digest, bad entry) gets ``error`` set; the ROI
stage writes error rows for the images that needed it instead of failing the partition.

What each kind can execute, and what the registry demands of it:

- ``builtin``: the project's own rules (``roi/builtin``); nothing from outside. Digest = its code.
- ``torchscript``: a TorchScript graph loaded with ``torch.jit.load``: tensor operations in TorchScript's
  restricted language, no Python objects are unpickled. Digest pin optional.
- ``monai_bundle``: the bundle's config files ARE code -- ``$`` expressions are evaluated as Python,
  ``_target_`` instantiates any importable callable (``os.system`` included), its handlers may
  ``torch.load`` pickles. It runs only when the entry says ``trusted: true`` (the operator read it)
  AND pins ``sha256`` (the digest of the folder it read) AND the folder still has that digest;
  otherwise the entry resolves with an error saying why and nothing in the folder is parsed.
  Weights the project itself loads are read with ``torch.load(weights_only=True)`` or safetensors.
- precomputed masks (a source's ``expert_masks``): NIfTI label files and a JSON/CSV label map: data only.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KINDS = ("builtin", "torchscript", "monai_bundle")
# built-in expert -> its module under roi.builtin (the module's rules are the model)
BUILTINS = {"ct_anatomy": "ct", "chest_xray": "chest_xray", "brain": "brain", "field_of_view": "field_of_view"}
# code every built-in shares: editing it changes every built-in's digest
BUILTIN_SHARED = ("__init__", "grid")
MODELS_PREFIX = "@models/"
REGISTRATION = "registration.json"
NAME_RE = re.compile(r"^[a-z0-9_]+$")


class RegistryError(ValueError):
    """The registry file as a whole is unreadable (not one model: those get ``ResolvedModel.error``)."""


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    kind: str
    version: str = ""
    sha256: str = ""
    path: Path | None = None  # weights file (torchscript) or bundle folder
    builtin: str | None = None
    modalities: tuple[str, ...] = ()
    organs: tuple[str, ...] = ()
    labels: dict[int, str] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5
    metrics: dict[str, Any] = field(default_factory=dict)
    scope: str = ""  # what the model is for, in a sentence (registry docs, the UI and the card show it)
    confidence: dict[str, float] = field(default_factory=dict)  # label -> measured score used as ROI confidence
    trusted: bool = False  # the operator vouches for code the model's config executes (MONAI bundles)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def origin(self) -> str:
        """The ``origin`` value of the ROIs this model produces."""
        return f"expert:{self.name}@{self.version}"

    @property
    def version_key(self) -> str:
        """What a ROI partition records per model it used: version and digest."""
        return f"{self.version}@{self.sha256[:16]}" if self.ok else f"error:{self.error}"

    def applies(self, modality: str | None, organ: str | None) -> bool:
        """Whether this model is meant for an image of ``modality`` / ``organ`` (empty lists: any)."""
        if self.modalities and (modality or "").upper() not in self.modalities:
            return False
        if self.organs and (organ or "").lower() not in self.organs:
            return False
        return True

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "sha256": self.sha256,
            "applies_to": {"modalities": list(self.modalities), "organs": list(self.organs)},
            "labels": {str(k): v for k, v in self.labels.items()},
            "scope": self.scope,
            "trusted": self.trusted,
            "status": "ok" if self.ok else "error",
            "error": self.error or "",
            **({"metrics": self.metrics} if self.metrics else {}),
        }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_tree(folder: Path) -> str:
    """Digest of a folder: every file's relative path and bytes, in sorted order (hidden files skipped)."""
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file() and not any(part.startswith(".") for part in q.relative_to(folder).parts)):
        h.update(str(p.relative_to(folder)).encode("utf-8") + b"\0")
        h.update(sha256_file(p).encode("ascii"))
    return h.hexdigest()


def builtin_module(name: str):
    """The module of a built-in expert (``roi.builtin.<module>``)."""
    import importlib

    if name not in BUILTINS:
        raise ValueError(f"unknown built-in expert {name!r}; known: {', '.join(BUILTINS)}")
    return importlib.import_module(f"medtrinity_assets.roi.builtin.{BUILTINS[name]}")


def builtin_digest(name: str) -> str:
    """A built-in's 'weights' are its code: the digest of its module and the helpers every built-in shares
    (and the body-region words), so editing a rule is a model update."""
    from medtrinity_assets.roi import body_region

    folder = Path(builtin_module(name).__file__).parent
    h = hashlib.sha256()
    for path in [folder / f"{BUILTINS[name]}.py", *(folder / f"{m}.py" for m in BUILTIN_SHARED), Path(body_region.__file__)]:
        h.update(path.name.encode() + b"\0" + sha256_file(path).encode())
    return h.hexdigest()


def _resolve_path(raw: str, yaml_dir: Path, models_dir: Path | None) -> Path:
    if raw.startswith(MODELS_PREFIX):
        if models_dir is None:
            raise ValueError(f"path {raw!r} is under the pipeline's models folder, but no data_root is known")
        return models_dir / raw[len(MODELS_PREFIX) :]
    p = Path(raw).expanduser()
    return p if p.is_absolute() else (yaml_dir / p).resolve()


def _str_list(value: Any, where: str, upper: bool) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: expected a list of names, got {value!r}")
    return tuple(v.upper() if upper else v.lower() for v in value)


def _labels(value: Any, where: str) -> dict[int, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping like {{1: lesion}}, got {value!r}")
    try:
        return {int(k): str(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{where}: keys must be integer output channels, got {list(value)}") from None


def _scores(value: Any, where: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping like {{lung: 0.93}}, got {value!r}")
    out = {}
    for k, v in value.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= float(v) <= 1:
            raise ValueError(f"{where}: {k!r} must be a score between 0 and 1, got {v!r}")
        out[str(k)] = float(v)
    return out


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    return value


def resolve_entry(raw: Any, index: int, yaml_path: Path, models_dir: Path | None) -> ResolvedModel:
    """One YAML entry -> a ResolvedModel (``error`` set when the entry or its weights are unusable)."""
    where = f"{yaml_path}: models[{index}]"
    name = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or not isinstance(name, str) or not NAME_RE.match(name):
        return ResolvedModel(name=str(name or f"entry_{index}"), kind="?",
                             error=f"{where}: each entry needs a 'name' matching [a-z0-9_]+ (got {name!r})")
    where = f"{yaml_path}: model '{name}'"
    kind = raw.get("kind")
    try:  # applicability first: a model that fails later still says which images needed it
        applies = raw.get("applies_to") or {}
        if not isinstance(applies, dict):
            raise ValueError("field 'applies_to': expected {modalities: [...], organs: [...]}")
        common = dict(
            name=name,
            kind=str(kind),
            modalities=_str_list(applies.get("modalities"), "field 'applies_to.modalities'", upper=True),
            organs=_str_list(applies.get("organs"), "field 'applies_to.organs'", upper=False),
            labels=_labels(raw.get("labels"), "field 'labels'"),
            preprocess=dict(raw.get("preprocess") or {}),
            threshold=float(raw.get("threshold", 0.5)),
            scope=str(raw.get("scope") or ""),
            confidence=_scores(raw.get("confidence"), "field 'confidence'"),
            trusted=_bool(raw.get("trusted", False), "field 'trusted'"),
        )
    except (ValueError, TypeError) as exc:
        return ResolvedModel(name=name, kind=str(kind), version=str(raw.get("version") or ""), error=f"{where}: {exc}")
    try:
        if kind not in KINDS:
            raise ValueError(f"field 'kind': {kind!r} is not one of {', '.join(KINDS)}")
        version = str(raw.get("version") or "")
        if raw.get("sha256") is not None and not isinstance(raw.get("sha256"), str):
            raise ValueError(f"field 'sha256': {raw.get('sha256')!r} is not text; quote the digest (YAML read it as a number)")
        expected = str(raw.get("sha256") or "").lower()
        if kind == "builtin":
            which = raw.get("builtin", name)
            if which not in BUILTINS:
                raise ValueError(f"field 'builtin': {which!r} is not one of {', '.join(BUILTINS)}")
            common["builtin"] = which
            if not version:
                raise ValueError("field 'version': required for a built-in model")
            digest = builtin_digest(which)
            _check_digest(expected, digest)
            return ResolvedModel(version=version, sha256=digest, **common)
        if not isinstance(raw.get("path"), str):
            raise ValueError("field 'path': missing (weights file or model folder, relative to the YAML)")
        path = _resolve_path(raw["path"], yaml_path.parent, models_dir)
        metrics: dict[str, Any] = {}
        if path.is_dir() and (path / REGISTRATION).is_file():
            reg = _read_registration(path / REGISTRATION)
            version = version or str(reg.get("version") or "")
            weights = path / str(reg.get("file") or "")
            if not weights.is_file():
                raise FileNotFoundError(f"{weights}: the registered weights file is missing; retrain (materialise lesion_model)")
            digest = sha256_file(weights)
            if reg.get("sha256") and reg["sha256"] != digest:
                raise ValueError(f"{weights}: sha256 {digest[:16]}... differs from the registered {str(reg['sha256'])[:16]}...; "
                                 "the file changed after registration; retrain or restore it")
            _check_digest(expected, digest)
            common["labels"] = common["labels"] or _labels(reg.get("labels"), f"{path / REGISTRATION} field 'labels'")
            common["preprocess"] = {**reg.get("preprocess", {}), **common["preprocess"]}
            metrics = dict(reg.get("metrics") or {})
            path = weights
        elif not path.exists():
            hint = " (written by the lesion_model asset: materialise it first)" if raw["path"].startswith(MODELS_PREFIX) else ""
            raise FileNotFoundError(f"{path}: model file not found{hint}")
        elif kind == "monai_bundle":
            if not path.is_dir():
                raise ValueError(f"{path}: a monai_bundle path must be the bundle folder (configs/, models/)")
            digest = sha256_tree(path)
            _check_digest(expected, digest)
            _check_trusted(common["trusted"], expected, digest)
            if not version:
                meta = path / "configs" / "metadata.json"
                version = str(json.loads(meta.read_text()).get("version") or "") if meta.is_file() else ""
        else:
            if not path.is_file():
                raise ValueError(f"{path}: a torchscript path must be a file")
            digest = sha256_file(path)
            _check_digest(expected, digest)
        if not version:
            raise ValueError("no version: set 'version' (or ship configs/metadata.json / registration.json)")
        return ResolvedModel(version=version, sha256=digest, path=path, metrics=metrics, **common)
    except (ValueError, OSError) as exc:
        return ResolvedModel(version=str(raw.get("version") or ""), error=f"{where}: {exc}", **common)


def _check_trusted(trusted: bool, expected: str, digest: str) -> None:
    """A MONAI bundle executes its config: refuse it unless the entry vouches for it and pins what it read."""
    if not trusted:
        raise ValueError("refused: a MONAI bundle's config executes code ($ expressions, _target_ callables); "
                         "read it, then set 'trusted: true' and pin 'sha256' in its registry entry")
    if not expected:
        raise ValueError(f"refused: a trusted bundle must pin its digest; add sha256: \"{digest}\" "
                         "(the folder as it is now) to its registry entry")


def check_runnable(model: ResolvedModel) -> None:
    """Raise unless ``model`` may run: resolved without error and, for code-executing kinds, trusted and pinned."""
    if not model.ok:
        raise ValueError(model.error or f"model {model.name} did not resolve")
    if model.kind == "monai_bundle" and not (model.trusted and model.sha256):
        raise ValueError(f"model {model.name}: refused: an untrusted MONAI bundle is never run")


def _check_digest(expected: str, actual: str) -> None:
    if expected and expected != actual:
        raise ValueError(f"sha256 mismatch: the file has {actual[:16]}..., the registry expects {expected[:16]}...; "
                         "update 'sha256' if the new weights are intended")


def _read_registration(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable registration ({exc}); retrain to rewrite it") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: registration must be a JSON object")
    return data


def load_registry(path: Path | str, models_dir: Path | None = None) -> list[ResolvedModel]:
    """Every model of the registry file, resolved; raises RegistryError only for an unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"{path}: model registry not found (set 'models:' in the sources YAML)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None
    entries = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise RegistryError(f"{path}: top level must be a mapping with a 'models' list")
    out = [resolve_entry(e, i, path, models_dir) for i, e in enumerate(entries)]
    names = [m.name for m in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RegistryError(f"{path}: duplicate model name(s) {dupes}")
    return out


def current_versions(models: list[ResolvedModel]) -> dict[str, str]:
    """``{'model:<name>': version@digest}``: what a ROI partition records for each model it used."""
    return {f"model:{m.name}": m.version_key for m in models}


def write_registration(folder: Path, weights_name: str, version: str, sha256: str, *, labels: dict[int, str],
                       preprocess: dict[str, Any], metrics: dict[str, Any]) -> Path:
    """Register trained weights: write ``registration.json`` beside them (atomically)."""
    from medtrinity_assets.storage import atomic_write_text

    body = {"version": version, "file": weights_name, "sha256": sha256, "labels": {str(k): v for k, v in labels.items()},
            "preprocess": preprocess, "metrics": metrics}
    target = folder / REGISTRATION
    atomic_write_text(target, json.dumps(body, indent=2, sort_keys=True))
    return target
