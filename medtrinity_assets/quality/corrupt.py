"""Deliberate corruption of descriptions, to measure that the consistency gate catches what it should.

Each corruption is one of the original captions' failure modes: the wrong side, the wrong modality,
the wrong organ, the wrong size. Applied deterministically (seeded by sample id) to a share of rows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

_SIDE = re.compile(r"\b(left|right)\b")
_MODALITY = [(re.compile(r"computed tomography \(CT\)|computed tomography|\bCT\b"), "magnetic resonance imaging (MRI)"),
             (re.compile(r"magnetic resonance imaging|\bMRI?\b"), "computed tomography"),
             (re.compile(r"radiograph\w*|X-ray", re.IGNORECASE), "ultrasound image")]
_SIZE = {"small": "large", "large": "small", "medium-sized": "large", "medium": "large"}
_ORGAN = re.compile(r"\b(abdomen|chest|brain|head)\b")
_ORGAN_SWAP = {"abdomen": "brain", "chest": "pelvis", "brain": "breast", "head": "abdomen"}
KINDS = ("side", "modality", "organ", "size")


def _u(sample_id: str, salt: str) -> float:
    return int(hashlib.sha256(f"{salt}:{sample_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def corrupt_text(text: str, kind: str) -> str:
    """The text with one kind of wrong fact injected ('' change when the text has nothing to corrupt)."""
    if kind == "side":
        return _SIDE.sub(lambda m: "right" if m.group(1) == "left" else "left", text)
    if kind == "modality":
        for pat, repl in _MODALITY:
            if pat.search(text):
                return pat.sub(repl, text)
        return text
    if kind == "organ":
        return _ORGAN.sub(lambda m: _ORGAN_SWAP[m.group(1)], text)
    if kind == "size":
        return re.sub(r"\b(small|large|medium-sized)\b", lambda m: _SIZE[m.group(1)], text)
    raise ValueError(f"unknown corruption {kind!r}; use one of {KINDS}")


def corrupt_rows(rows: Iterable[dict[str, Any]], share: float = 0.5, kinds: tuple[str, ...] = KINDS,
                 seed: str = "corrupt") -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Copies of the rows with ``share`` of the ok descriptions corrupted; returns (rows, changed per kind)."""
    out, changed = [], {k: 0 for k in kinds}
    for r in rows:
        r = dict(r)
        sid = str(r.get("sample_id"))
        if r.get("description") and _u(sid, seed) < share:
            kind = kinds[int(_u(sid, seed + "k") * len(kinds)) % len(kinds)]
            new = corrupt_text(r["description"], kind)
            if new != r["description"]:
                r["description"] = new
                changed[kind] += 1
        out.append(r)
    return out, changed
