"""PHI scan: search every output file for identifier values found in the inputs, by kind.

Identifiers come from the readers' ``ItemRef.identifiers`` (patient names and IDs, accession numbers
... seen in headers and paths) or from a list the caller gives. Text files, JSON, Parquet (string and
binary columns decoded, nested values walked), tar members and the text chunks of PNG images are
searched (an image's pixels are OCR's job: its compressed bytes hold short identifiers by chance). The report holds counts, kinds and file names only: the identifiers themselves are never
written anywhere.

Strict and usable at once: whole values are found anywhere in their usual spellings (a person name as
``FAMILY^GIVEN``, "Given Family", "FAMILY, Given", initials; a date as printed), while a name part
that is an ordinary word ("Small", "Long", "White", "Young") or a word of a configured source name is
never searched on its own -- it would block every shard that says "small".
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtrinity_assets.deid.detect import KIND_WORDS, KnownValues

TEXT_SUFFIXES = {".txt", ".json", ".jsonl", ".md", ".csv", ".tsv", ".yaml", ".yml", ".html", ".xml", ""}


def scan_variants(identifiers: Iterable[str], public_words: Iterable[str] = ()) -> dict[str, list[str]]:
    """kind -> the strings searched for (see :class:`medtrinity_assets.deid.detect.KnownValues`): whole
    values in their file-name spellings, person names as FAMILY^GIVEN / "Given Family" / "FAMILY, Given" /
    initials, name parts alone only when they are not ordinary words, dates in their printed forms."""
    known = KnownValues.from_values(identifiers, public_words=public_words)
    return {k: sorted(v, key=len, reverse=True) for k, v in known.spellings().items()}


def compile_identifiers(identifiers: Iterable[str], public_words: Iterable[str] = ()) -> dict[str, re.Pattern[bytes]]:
    """kind -> one case-insensitive byte pattern, bounded so hashes and longer words do not match by chance."""
    out = {}
    for kind, variants in scan_variants(identifiers, public_words).items():
        alternation = b"|".join(re.escape(v.encode("utf-8")) for v in variants)
        out[kind] = re.compile(rb"(?<![A-Za-z0-9])(?:" + alternation + rb")(?![A-Za-z0-9])", re.IGNORECASE)
    return out


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
    hits_by_kind: dict[str, int] = field(default_factory=dict)  # patient_name | id | date | institution
    findings: list[str] = field(default_factory=list)  # "<file>: <kind> x<n>" -- where and what kind, no value
    skipped: list[str] = field(default_factory=list)  # folders left out on purpose (the private path table)

    @property
    def ok(self) -> bool:
        return self.hits == 0

    def describe(self, limit: int = 5) -> str | None:
        """One sentence for a failing check: which kind of identifier, in which files (never the value)."""
        if self.ok:
            return None
        kinds = ", ".join(f"{KIND_WORDS.get(k, k)} x{n}" for k, n in sorted(self.hits_by_kind.items()))
        where = "; ".join(self.findings[:limit]) + (" ..." if len(self.findings) > limit else "")
        return f"identifiers found ({kinds}) in: {where}"


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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt", b"eXIf")


def png_text(data: bytes) -> Iterator[bytes]:
    """The text a PNG carries (tEXt, zTXt, iTXt, eXIf chunks), decompressed; never its pixel stream: a short
    identifier ("CT1") turns up by chance in compressed IDAT bytes, and the pixels are read by OCR instead."""
    import zlib

    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind not in PNG_TEXT_CHUNKS:
            continue
        if kind == b"zTXt":
            keyword, _, rest = body.partition(b"\0")
            yield keyword
            try:
                yield zlib.decompress(rest[1:])
            except zlib.error:
                yield rest
        elif kind == b"iTXt":
            keyword, _, rest = body.partition(b"\0")
            compressed, rest = rest[:1] == b"\x01", rest[2:]
            lang, _, rest = rest.partition(b"\0")
            translated, _, text = rest.partition(b"\0")
            yield from (keyword, lang, translated)
            try:
                yield zlib.decompress(text) if compressed else text
            except zlib.error:
                yield text
        else:
            yield body


NPY_MAGIC = b"\x93NUMPY"


def _binary(data: bytes) -> Iterator[bytes]:
    """What of a binary payload can hold text: a PNG's text chunks, a NumPy file's header (its body is numbers,
    whose bytes spell short names by chance), anything else whole."""
    if data.startswith(PNG_SIGNATURE):
        yield from png_text(data)
    elif data.startswith(NPY_MAGIC) and len(data) >= 10:
        size = 2 if data[6] == 1 else 4
        yield data[:8 + size + int.from_bytes(data[8:8 + size], "little")]
    else:
        yield data


def _walk(value: Any) -> Iterator[bytes]:
    if value is None:
        return
    if isinstance(value, str):
        yield value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray)):
        yield from _binary(bytes(value))
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
        yield from _binary(data)  # text and JSON whole; PNG: its text chunks; NumPy: its header


def scan_file(path: Path, patterns: dict[str, re.Pattern[bytes]], display_name: str | None = None) -> tuple[dict[str, int], int]:
    """(hits per kind, bytes) in one file."""
    data = Path(path).read_bytes()
    hits: dict[str, int] = {}
    if not patterns:
        return hits, len(data)
    for chunk in _chunks_of(display_name or Path(path).name, data):
        for kind, pattern in patterns.items():
            n = len(pattern.findall(chunk))
            if n:
                hits[kind] = hits.get(kind, 0) + n
    return hits, len(data)


def scan_paths(root: Path, paths: Iterable[Path], identifiers: Iterable[str], public_words: Iterable[str] = ()) -> PhiReport:
    """Scan the given files (relative names reported against ``root``)."""
    ids = sorted({str(i) for i in identifiers if i})
    patterns = compile_identifiers(ids, public_words)
    rep = PhiReport(identifiers=len(ids))
    for p in sorted(paths):
        rel = p.relative_to(root).as_posix() if p.is_relative_to(root) else p.name
        try:
            hits, size = scan_file(p, patterns, display_name=rel)
        except Exception as exc:  # an unreadable output is itself a finding
            rep.errors.append(f"{rel}: {type(exc).__name__}")
            continue
        rep.files_scanned += 1
        rep.bytes_scanned += size
        if hits:
            rep.hits += sum(hits.values())
            rep.files_with_hits.append(rel)
            for kind, n in sorted(hits.items()):
                rep.hits_by_kind[kind] = rep.hits_by_kind.get(kind, 0) + n
                rep.findings.append(f"{rel}: {KIND_WORDS.get(kind, kind)} x{n}")
    return rep


def scan_tree(root: Path, identifiers: Iterable[str], skip: Iterable[str] = (".salt",),
              public_words: Iterable[str] = ()) -> PhiReport:
    """Scan every file under ``root`` except the salt, temporaries and the private path table
    (``private/``: the one documented place that maps file keys back to paths; reported as skipped)."""
    from medtrinity_assets.deid.paths import PRIVATE_DIR

    root = Path(root)
    skip = set(skip)
    private = root / PRIVATE_DIR
    paths = [p for p in root.rglob("*") if p.is_file() and p.name not in skip and not p.name.endswith(".tmp")
             and not p.is_relative_to(private)]
    rep = scan_paths(root, paths, identifiers, public_words)
    if private.exists():
        rep.skipped.append(PRIVATE_DIR + "/")
    return rep


def public_words(config) -> list[str]:
    """Words that are public by construction (the configured source and corpus names): never searched alone."""
    names = [s.name for s in config.sources] + [c.name for c in getattr(config, "corpora", ())]
    return sorted({w for n in names for w in re.split(r"[_\W]+", n) if w})


def identifiers_for(config) -> list[str]:
    """Identifiers found by re-scanning the sources, plus ``quality.phi_identifiers_file`` (one per line)
    for identifiers the readers cannot see (e.g. names a site knows are in its folder names)."""
    ids = set(collect_identifiers(config))
    path = config.quality.phi_identifiers_file  # resolved against the YAML and checked at load
    if path is not None:
        ids.update(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return sorted(ids)


@dataclass
class ExportPhiResult:
    """The export PHI check: bytes (identifier values) and pixels (OCR) of one shard folder."""

    text: PhiReport
    pixels: Any  # quality.phi_pixels.PixelScanReport, or None when the shard has no image / OCR is off

    @property
    def ok(self) -> bool:
        return self.text.ok and not self.text.errors and (self.pixels is None or self.pixels.ok)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "files_scanned": self.text.files_scanned, "bytes_scanned": self.text.bytes_scanned,
            "hits": self.text.hits, "hits_by_kind": self.text.hits_by_kind,
            "identifiers_searched": self.text.identifiers, "files_with_hits": self.text.findings[:50],
            "unreadable_files": self.text.errors[:50],
        }
        if self.pixels is not None:
            meta.update(self.pixels.metadata())
            meta["pixel_findings"] = self.pixels.images_with_phi[:50]
            meta["pixel_errors"] = self.pixels.errors[:20]
        return meta

    def describe(self) -> str | None:
        parts = [d for d in (self.text.describe(),) if d]
        if self.pixels is not None and self.pixels.images_with_phi:
            kinds = ", ".join(f"{KIND_WORDS.get(k, k)} x{n}" for k, n in sorted(self.pixels.kinds.items()))
            parts.append(f"text readable in {len(self.pixels.images_with_phi)} exported images ({kinds}): "
                         + "; ".join(self.pixels.images_with_phi[:5]))
        if self.pixels is not None and self.pixels.errors:
            parts.append(f"{len(self.pixels.errors)} images could not be read for the pixel check")
        return " | ".join(parts) + "; this shard will not be published" if parts else None


def check_export_shard(folder: Path, config, layout, identifiers: Iterable[str], salt: str, *,
                       seed: str = "") -> ExportPhiResult:
    """Byte scan + OCR of the images of one export shard ``seed`` (``quality.phi_pixel_check: false`` turns
    the OCR part off). The OCR reads every image at risk -- judged from the shard's ``images`` rows, see
    :func:`export_image_risk` -- and a seeded sample of ``quality.phi_pixel_sample`` of the rest
    (:mod:`medtrinity_assets.quality.phi_pixels`)."""
    words = public_words(config)
    ids = list(identifiers)
    text = scan_tree(folder, ids, public_words=words)
    q = config.quality
    pixels = None
    if q.phi_pixel_check:
        from medtrinity_assets.quality.phi_pixels import scan_export_pixels

        pixels = scan_export_pixels(folder, ids, risk=export_image_risk(layout, config, seed),
                                    cache_dir=layout.root / "cache" / "phi_ocr", salt=salt,
                                    engine_name=config.ingest.ocr_engine,
                                    sample=q.phi_pixel_sample, seed=seed, public_words=words)
    return ExportPhiResult(text=text, pixels=pixels)


def export_image_risk(layout, config, shard: str) -> dict[str, str | None]:
    """image sha256 -> why the export check must read it (None: its provenance expects no text), from the
    ``images`` rows of every configured source in ``shard`` (:func:`medtrinity_assets.deid.pixels.export_risk`).
    An image two rows share is at risk when either row says so."""
    import pyarrow.parquet as pq

    from medtrinity_assets.deid.pixels import export_risk

    formats = {s.name: s.format for s in config.sources}
    out: dict[str, str | None] = {}
    for name, fmt in formats.items():
        path = layout.table_path("images", {"source": name, "shard": shard})
        if not path.exists():
            continue
        pf = pq.ParquetFile(path)
        cols = [c for c in ("image_sha256", "modality", "deid_json") if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=4096, columns=cols):
            for row in batch.to_pylist():
                sha = row.get("image_sha256")
                if not sha:
                    continue
                reason = export_risk(row.get("modality"), fmt, row.get("deid_json"))
                if out.get(sha) is None:
                    out[sha] = reason
    return out
