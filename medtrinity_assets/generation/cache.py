"""On-disk cache of successful model answers, so a rerun with the same model, prompt and image costs nothing.

Key = sha256(model, rendered-prompt hash, image hash). Only answers that passed validation are
stored (a failure must be retried on the next run). One small JSON file per key, written atomically.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from medtrinity_assets.storage import atomic_write_text


def cache_key(model: str, request_sha256: str, image_sha256: str) -> str:
    h = hashlib.sha256()
    for part in (model, request_sha256, image_sha256):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


class ResponseCache:
    def __init__(self, root: Path | None) -> None:
        self.root = Path(root) if root else None

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        if self.root is None:
            return None
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict) -> None:
        if self.root is not None:
            atomic_write_text(self._path(key), json.dumps(value, sort_keys=True))
