"""De-identification: salted hashes for identifiers and scrubbing of paths.

Identifiers (patient, study, series, file names that hold them) never leave the input: every key
column is ``HMAC-SHA256(salt, kind + raw)`` truncated, and any path kept for the operator has every
identifier value found in the headers replaced by ``[redacted]``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

REDACTED = "[redacted]"


def salted_key(raw: str | None, salt: str, kind: str) -> str:
    """Stable pseudonym of ``raw`` for ``kind`` (subject/study/series/item); '' stays ''."""
    if raw is None or str(raw) == "":
        return ""
    digest = hmac.new(salt.encode(), f"{kind}:{raw}".encode(), hashlib.sha256).hexdigest()
    return f"{kind[:3]}-{digest[:20]}"


def identifier_variants(values: Iterable[str]) -> list[str]:
    """The forms an identifier takes in file names: as is, ^ and spaces turned to _ . -, parts of names."""
    out: set[str] = set()
    for v in values:
        v = str(v or "").strip()
        if len(v) < 3:
            continue
        out.add(v)
        for sep in ("_", "-", ".", " ", ""):
            out.add(re.sub(r"[\^\s]+", sep, v).strip(sep))
        for part in re.split(r"[\^\s,]+", v):
            if len(part) >= 4:
                out.add(part)
    return sorted((o for o in out if len(o) >= 3), key=len, reverse=True)


def scrub(text: str, identifiers: Iterable[str]) -> str:
    """Replace every occurrence (case-insensitive) of any identifier form in ``text``."""
    for ident in identifier_variants(identifiers):
        text = re.sub(re.escape(ident), REDACTED, text, flags=re.IGNORECASE)
    return text


def stable_shard(subject_key: str, shards: int) -> str:
    """Shard of a subject: a stable hash, so one patient never spans shards (or splits)."""
    h = int(hashlib.sha256(subject_key.encode()).hexdigest()[:8], 16)
    return shard_name(h % shards)


def shard_name(i: int) -> str:
    return f"s{i:02d}"


def split_of(subject_key: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """Patient-level split from the subject key alone: deterministic and independent of the shard."""
    u = int(hashlib.sha256(b"split:" + subject_key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "validation"
    return "test"
