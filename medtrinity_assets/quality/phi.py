"""PHI scan: search every output file for identifier strings found in the inputs.

Identifiers come from the readers' ``ItemRef.identifiers`` (patient names and IDs, accession numbers
... seen in headers and paths) or from a list the caller gives. Text files, JSON, Parquet (string and
binary columns decoded, nested values walked), tar members and raw bytes of images (PNG text chunks)
are searched. The report holds counts and file names only: the identifiers themselves are never
written anywhere.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtrinity_assets import vocabulary as V
from medtrinity_assets.deid import identifier_variants

MIN_IDENTIFIER_LEN = 4  # shorter values (e.g. "M", "12") match everywhere and identify nobody
TEXT_SUFFIXES = {".txt", ".json", ".jsonl", ".md", ".csv", ".tsv", ".yaml", ".yml", ".html", ".xml", ""}


# header values that are ordinary words of the domain (private tags often hold "ABDOMEN", "NORMAL" ...):
# searching them would flag every description; they identify nobody
COMMON_WORDS = frozenset(
    {"normal", "anonymous", "anonymized", "anonymised", "unknown", "none", "other", "phantom", "test", "axial",
     "original", "primary", "derived", "secondary", "localizer", "body", "image", "images", "series", "study",
     "patient", "left", "right", "both", "yes", "true", "false", "null", "default", "routine", "standard",
     "contrast", "imaging", "center", "centre", "hospital", "clinic", "department", "radiology", "anon",
     "anonymous^anonymous", "removed", "redacted", "[redacted]"}
    | set(V.ORGAN_SYNONYMS) | {t for terms in V.MODALITY_TERMS.values() for t in terms} | set(V.FINDING_TERMS)
)


def _placeholder(value: str) -> bool:
    """Filler a header holds instead of a value ("----", "00000", "XXXX"): identifies nobody, matches noise."""
    alnum = [c for c in value.lower() if c.isalnum()]
    return len(alnum) < 3 or len(set(alnum)) == 1


def scan_variants(identifiers: Iterable[str]) -> list[str]:
    """The strings searched for: every whole value in its file-name spellings (^ and spaces as _ - . or
    nothing); the parts of person names (DICOM PN values, ``FAMILY^GIVEN``); never a value that is a
    common word of the domain. Longest first, so the longest spelling wins."""
    keep: set[str] = set()
    for raw in identifiers:
        value = str(raw or "").strip()
        if len(value) < MIN_IDENTIFIER_LEN or value.lower() in COMMON_WORDS or _placeholder(value):
            continue
        variants = {v for v in identifier_variants([value])
                    if len(v) >= MIN_IDENTIFIER_LEN and v.lower() not in COMMON_WORDS}
        if "^" not in value:  # not a person name: its single words identify nobody on their own
            words = {w for w in re.split(r"[\s,]+", value) if w}
            if len(words) > 1:
                variants -= words
        keep |= variants
    return sorted(keep, key=len, reverse=True)


def compile_identifiers(identifiers: Iterable[str]) -> re.Pattern[bytes] | None:
    """One case-insensitive byte pattern for every variant, bounded so hashes do not match by chance."""
    variants = scan_variants(identifiers)
    if not variants:
        return None
    alternation = b"|".join(re.escape(v.encode("utf-8")) for v in variants)
    return re.compile(rb"(?<![A-Za-z0-9])(?:" + alternation + rb")(?![A-Za-z0-9])", re.IGNORECASE)


def collect_identifiers(config) -> list[str]:
    """Re-scan every configured source with its reader (headers only) and gather the identifiers."""
    from medtrinity_assets.formats.base import ItemRef, get_reader

    out: set[str] = set()
    for source in config.sources:
        try:
            reader = get_reader(source.format)
            for item in reader.scan(source):
                if isinstance(item, ItemRef):
                    out.update(str(i) for i in item.identifiers if i)
        except Exception:  # a source that cannot be scanned has its own quarantine rows upstream
            continue
    return sorted(out)


@dataclass
class PhiReport:
    files_scanned: int = 0
    bytes_scanned: int = 0
    hits: int = 0
    files_with_hits: list[str] = field(default_factory=list)  # relative paths (never the identifiers)
    errors: list[str] = field(default_factory=list)
    identifiers: int = 0  # how many distinct identifier values were searched

    @property
    def ok(self) -> bool:
        return self.hits == 0


def _parquet_chunks(data: bytes) -> Iterator[bytes]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    for name in table.column_names:
        for value in table.column(name).to_pylist():
            yield from _walk(value)
    meta = table.schema.metadata or {}
    for k, v in meta.items():
        yield k
        yield v


def _walk(value: Any) -> Iterator[bytes]:
    if value is None:
        return
    if isinstance(value, str):
        yield value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray)):
        yield bytes(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k).encode("utf-8")
            yield from _walk(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _walk(v)


def _chunks_of(name: str, data: bytes) -> Iterator[bytes]:
    suffix = Path(name).suffix.lower()
    yield name.encode("utf-8")  # file names can hold identifiers too
    if suffix == ".parquet":
        yield from _parquet_chunks(data)
    elif suffix == ".tar" or name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar:
                yield member.name.encode("utf-8")
                if member.isfile():
                    fh = tar.extractfile(member)
                    if fh is not None:
                        yield from _chunks_of(member.name, fh.read())
    else:
        yield data  # text, JSON, PNG (tEXt chunks), NumPy: raw bytes


def scan_file(path: Path, pattern: re.Pattern[bytes] | None, display_name: str | None = None) -> tuple[int, int]:
    """(hits, bytes) in one file."""
    data = Path(path).read_bytes()
    if pattern is None:
        return 0, len(data)
    hits = 0
    for chunk in _chunks_of(display_name or Path(path).name, data):
        hits += len(pattern.findall(chunk))
    return hits, len(data)


def scan_paths(root: Path, paths: Iterable[Path], identifiers: Iterable[str]) -> PhiReport:
    """Scan the given files (relative names reported against ``root``)."""
    ids = sorted({str(i) for i in identifiers if i})
    pattern = compile_identifiers(ids)
    rep = PhiReport(identifiers=len(ids))
    for p in sorted(paths):
        rel = p.relative_to(root).as_posix() if p.is_relative_to(root) else p.name
        try:
            hits, size = scan_file(p, pattern, display_name=rel)
        except Exception as exc:  # an unreadable output is itself a finding
            rep.errors.append(f"{rel}: {type(exc).__name__}")
            continue
        rep.files_scanned += 1
        rep.bytes_scanned += size
        if hits:
            rep.hits += hits
            rep.files_with_hits.append(rel)
    return rep


def scan_tree(root: Path, identifiers: Iterable[str], skip: Iterable[str] = (".salt",)) -> PhiReport:
    """Scan every file under ``root`` (except the salt and temporaries)."""
    root = Path(root)
    skip = set(skip)
    paths = [p for p in root.rglob("*") if p.is_file() and p.name not in skip and not p.name.endswith(".tmp")]
    return scan_paths(root, paths, identifiers)


def identifiers_for(config) -> list[str]:
    """Identifiers found by re-scanning the sources, plus ``quality.phi_identifiers_file`` (one per line)
    for identifiers the readers cannot see (e.g. names a site knows are in its folder names)."""
    ids = set(collect_identifiers(config))
    path = config.quality.phi_identifiers_file  # resolved against the YAML and checked at load
    if path is not None:
        ids.update(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return sorted(ids)
