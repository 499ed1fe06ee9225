"""Leakage: images that are (near-)copies of evaluation-set images must not be trained on.

Users list the perceptual hashes of benchmark test images (VQA-RAD, SLAKE, PathVQA ...) in a text
file, one hex hash per line (``#`` starts a comment). Matching images are excluded from exports and
counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtrinity_assets.quality.phash import HashIndex, parse_hash


class EvalHashError(ValueError):
    """A malformed evaluation-hash file; the message names the file and line."""


def load_eval_hashes(path: Path | None) -> list[int]:
    """Hashes from the file; no file configured means no list (and no leakage check)."""
    if path is None:
        return []
    path = Path(path)
    if not path.is_file():
        raise EvalHashError(f"{path}: evaluation-hash file not found (config field 'eval_hashes')")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            out.append(parse_hash(text.split()[0]))
        except ValueError:
            raise EvalHashError(f"{path}:{n}: {text[:40]!r} is not a 64-bit hex perceptual hash") from None
    return out


@dataclass(frozen=True)
class LeakHit:
    sample_id: str
    source: str
    distance: int


def find_leaks(rows: Iterable[Mapping[str, Any]], eval_hashes: list[int], threshold: int = 0) -> list[LeakHit]:
    """Images whose phash is within ``threshold`` bits of any evaluation hash."""
    if not eval_hashes:
        return []
    index = HashIndex(threshold)
    for h in eval_hashes:
        index.add(h)
    hits = []
    for r in rows:
        try:
            h = parse_hash(str(r.get("phash") or ""))
        except ValueError:
            continue
        found = index.query(h)
        if found:
            hits.append(LeakHit(str(r["sample_id"]), str(r.get("source") or ""), min(d for _, d in found)))
    return sorted(hits, key=lambda x: x.sample_id)
