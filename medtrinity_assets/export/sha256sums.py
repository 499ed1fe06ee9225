"""``SHA256SUMS`` for an export folder: written last and atomically; verified by readers and checks.

Format is the one ``sha256sum -c`` reads: ``<hex>  <relative path>`` per line, sorted by path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from medtrinity_assets.storage import atomic_write_text

SUMS_NAME = "SHA256SUMS"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _listed_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` except sums files and temporaries of atomic writes."""
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.name != SUMS_NAME
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)  # staging, temporaries
    )


def write_sha256sums(folder: Path, include_nested_sums: bool = False) -> Path:
    """Hash every file under ``folder`` and write ``folder/SHA256SUMS``; call it after the last file."""
    folder = Path(folder)
    lines = []
    for p in _listed_files(folder):
        lines.append(f"{file_sha256(p)}  {p.relative_to(folder).as_posix()}")
    if include_nested_sums:
        for p in sorted(folder.rglob(SUMS_NAME)):
            if p.parent != folder:
                lines.append(f"{file_sha256(p)}  {p.relative_to(folder).as_posix()}")
        lines.sort(key=lambda l: l.split("  ", 1)[1])
    out = folder / SUMS_NAME
    atomic_write_text(out, "\n".join(lines) + ("\n" if lines else ""))
    return out


@dataclass
class SumsReport:
    folder: str
    listed: int = 0
    verified: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not (self.error or self.mismatched or self.missing or self.unlisted)


def verify_sha256sums(folder: Path, allow_unlisted: bool = False) -> SumsReport:
    """Recompute every listed hash; report files that changed, vanished or appeared unlisted."""
    folder = Path(folder)
    rep = SumsReport(folder=str(folder))
    sums = folder / SUMS_NAME
    if not sums.is_file():
        rep.error = f"{sums} is missing: the export did not finish; rerun the export asset"
        return rep
    listed: dict[str, str] = {}
    for n, line in enumerate(sums.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            rep.error = f"{sums}:{n}: malformed line (expected '<sha256>  <path>')"
            return rep
        listed[rel] = digest
    rep.listed = len(listed)
    for rel, digest in sorted(listed.items()):
        p = folder / rel
        if not p.is_file():
            rep.missing.append(rel)
        elif file_sha256(p) != digest:
            rep.mismatched.append(rel)
        else:
            rep.verified += 1
    if not allow_unlisted:
        for p in _listed_files(folder):
            rel = p.relative_to(folder).as_posix()
            if rel not in listed and not rel.endswith("/" + SUMS_NAME):
                rep.unlisted.append(rel)
    return rep
