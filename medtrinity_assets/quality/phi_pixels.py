"""PHI in exported pixels: OCR the exported images at risk, and a stated sample of the rest.

The byte scan (:mod:`medtrinity_assets.quality.phi`) cannot see text drawn into an image. This check
walks every image of an export shard folder -- PNG/JPEG files, tar members (WebDataset), image bytes in
Parquet cells (HF) -- and reads distinct images with the OCR engine, classifying what it reads with the
same detector as ingest (:func:`medtrinity_assets.deid.pixels.classify_boxes`): any header value of the
inputs, or anything that looks like a person name, ID, date or time, fails the shard.

Which images are read:

- **every image at risk** (:func:`medtrinity_assets.deid.pixels.export_risk`, judged from the image's
  row in ``images``, found by its SHA-256): a modality at risk, a headerless source, BurnedInAnnotation
  YES, anything ingest redacted or read on request, an image without a de-identification record, and
  an image no row of the shard's ``images`` tables knows;
- **a seeded sample of n of the rest** (``quality.phi_pixel_sample``, default 300 per shard; ``all``
  reads every image). The sample is the n images with the smallest keyed hash HMAC(salt, shard|sha256):
  deterministic for a shard, the same images whichever format holds them (a format's sample is a
  subset-stable choice, so the five formats of a shard mostly pick the same images), unpredictable
  without the salt. With n read and none carrying readable PHI, the share of the rest that does is
  below ``1 - 0.05^(1/n)`` with 95 % confidence (about 3/n, the "rule of three"; 1.0 % for n = 300);
  the metadata reports that bound, or 0 when every image was read.

Each distinct image is read once: verdicts are cached by image content, engine version and searched
values under ``<data_root>/cache/phi_ocr/`` (kinds only, never text; the values enter the key as a salted
HMAC). Images are stored once and hard-linked into the loose formats and the same PNG bytes are embedded
in the others, so the five export formats of a shard cost one OCR read per distinct image. The folder is
streamed: only the images chosen for the sample (at most n) are held in memory at a time.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import io
import json
import math
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
DEFAULT_SAMPLE = 300  # images not at risk read per shard: miss-rate bound 1.0 % at 95 % confidence
CONFIDENCE = 0.95
NOT_IN_TABLES = "not_in_images_table"


def miss_rate_bound(n_read: int, population: int, confidence: float = CONFIDENCE) -> float | None:
    """Upper bound, at ``confidence``, on the share of a population carrying readable PHI when ``n_read``
    of them (a uniform sample) were read and none did: ``1 - (1 - confidence)^(1/n)`` (~3/n at 95 %).
    0 when the whole population was read; None when nothing was (no bound)."""
    if population <= 0 or n_read >= population:
        return 0.0
    if n_read <= 0:
        return None
    return math.ceil(1e6 * (1.0 - (1.0 - confidence) ** (1.0 / n_read))) / 1e6  # rounded up: still a bound


@dataclass
class PixelScanReport:
    images_found: int = 0  # image occurrences in the shard folder
    distinct_images: int = 0
    at_risk: int = 0  # distinct images at risk: every one is read
    at_risk_reasons: dict[str, int] = field(default_factory=dict)
    not_at_risk: int = 0  # distinct images whose provenance expects no text
    not_at_risk_read: int = 0  # ... of which read (the sample)
    sample_setting: int | str = DEFAULT_SAMPLE
    images_read: int = 0  # distinct images OCR'd or taken from the cache
    cached: int = 0
    ocr_seconds: float = 0.0  # time spent reading (decode + OCR + classification; cache hits excluded)
    images_with_phi: list[str] = field(default_factory=list)  # "<where>: <kinds>" (no text)
    kinds: dict[str, int] = field(default_factory=dict)
    engine: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.images_with_phi and not self.errors

    @property
    def sampled(self) -> bool:
        return self.not_at_risk_read < self.not_at_risk

    @property
    def miss_rate_bound(self) -> float | None:
        """95 % upper bound on the share of not-at-risk images with readable PHI (None once PHI was found:
        the shard fails and no bound is claimed)."""
        if self.images_with_phi:
            return None
        return miss_rate_bound(self.not_at_risk_read, self.not_at_risk)

    def statement(self) -> str:
        """What was read, in words (check metadata, README)."""
        read = f"{self.at_risk} images at risk read"
        if not self.not_at_risk:
            return read + "; no other image"
        if not self.sampled:
            return read + f"; all {self.not_at_risk} other images read"
        bound = self.miss_rate_bound
        tail = (f": with none carrying readable PHI, under {100 * bound:.2f} % of the {self.not_at_risk} carry "
                f"any ({int(CONFIDENCE * 100)} % confidence)") if bound is not None else ""
        return read + f"; a seeded sample of {self.not_at_risk_read} of the {self.not_at_risk} others read" + tail

    def metadata(self) -> dict:
        return {"pixel_images_found": self.images_found, "pixel_distinct_images": self.distinct_images,
                "pixel_at_risk_read": self.at_risk, "pixel_at_risk_reasons": dict(sorted(self.at_risk_reasons.items())),
                "pixel_not_at_risk": self.not_at_risk, "pixel_not_at_risk_read": self.not_at_risk_read,
                "pixel_sample_setting": self.sample_setting, "pixel_sampled": self.sampled,
                "pixel_miss_rate_bound_95": self.miss_rate_bound, "pixel_read_statement": self.statement(),
                "pixel_images_read": self.images_read, "pixel_cached": self.cached,
                "pixel_ocr_seconds": round(self.ocr_seconds, 2),
                "pixel_images_with_phi": len(self.images_with_phi), "pixel_kinds": self.kinds,
                "pixel_ocr_engine": self.engine}


def _is_image(data: bytes) -> bool:
    return data.startswith(_MAGIC)


def iter_images(folder: Path) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) of every image in an export folder: files, tar members, Parquet cells (streamed)."""
    folder = Path(folder)
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(folder).as_posix()
        name = p.name.lower()
        if name.endswith(IMAGE_SUFFIXES):
            yield rel, p.read_bytes()
        elif name.endswith((".tar", ".tar.gz", ".tgz")):
            with tarfile.open(p) as tar:
                for m in tar:
                    if m.isfile() and m.name.lower().endswith(IMAGE_SUFFIXES):
                        fh = tar.extractfile(m)
                        if fh is not None:
                            yield f"{rel}:{m.name}", fh.read()
        elif name.endswith(".parquet"):
            yield from _parquet_images(p, rel)


def _parquet_images(path: Path, rel: str) -> Iterator[tuple[str, bytes]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    schema = pf.schema_arrow
    for col in schema.names:
        t = schema.field(col).type
        if not (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_struct(t)):
            continue
        i = 0
        for batch in pf.iter_batches(batch_size=256, columns=[col]):
            for v in batch.column(0).to_pylist():
                data = v.get("bytes") if isinstance(v, dict) else v
                if isinstance(data, (bytes, bytearray)) and _is_image(bytes(data)):
                    yield f"{rel}:{col}[{i}]", bytes(data)
                i += 1


def _decode(data: bytes):
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()
        arr = np.asarray(im)
    if arr.dtype != np.uint8:
        arr = (arr / max(1, arr.max()) * 255).astype(np.uint8)
    return arr


def sample_rank(salt: str, seed: str, sha: str) -> bytes:
    """An image's place in the shard's sample order (smaller = chosen first): a keyed hash of its content."""
    return hmac.new(salt.encode(), f"{seed}|{sha}".encode(), hashlib.sha256).digest()


def scan_export_pixels(folder: Path, identifiers, *, risk: Callable[[str], str | None] | Mapping[str, str | None] | None = None,
                       cache_dir: Path | None = None, salt: str = "", engine_name: str = "rapidocr",
                       sample: int | str = DEFAULT_SAMPLE, seed: str = "", public_words=()) -> PixelScanReport:
    """OCR the images of one export shard folder (see module doc).

    ``risk(sha256)`` says why an image must be read (None: not at risk); a mapping is looked up, an
    image it does not hold counting as at risk (:data:`NOT_IN_TABLES`). Without ``risk`` every image
    is at risk (read). ``sample``: images not at risk read per shard, or ``"all"``."""
    from medtrinity_assets.deid.detect import KnownValues

    rep = PixelScanReport(sample_setting=sample)
    reason_of = _reason_lookup(risk)
    keep = None if sample == "all" else int(sample)
    known = KnownValues.from_values(identifiers, public_words=public_words)
    values_key = hmac.new(salt.encode(), json.dumps(sorted(map(str, identifiers))).encode(), hashlib.sha256).hexdigest()[:16]
    reader = _Reader(rep, known, engine_name, Path(cache_dir) if cache_dir else None, values_key)
    seen: set[str] = set()
    chosen: list[tuple[int, str, str, bytes]] = []  # the n smallest ranks so far, as a heap on -rank
    for where, data in iter_images(folder):
        rep.images_found += 1
        sha = hashlib.sha256(data).hexdigest()
        if sha in seen:
            continue
        seen.add(sha)
        reason = reason_of(sha)
        if reason is not None:
            rep.at_risk += 1
            rep.at_risk_reasons[reason] = rep.at_risk_reasons.get(reason, 0) + 1
            reader.read(sha, where, data)
            continue
        rep.not_at_risk += 1
        if keep is None:
            reader.read(sha, where, data)
            rep.not_at_risk_read += 1
            continue
        if keep <= 0:
            continue
        neg = -int.from_bytes(sample_rank(salt, seed, sha)[:8], "big")  # heap root = the largest rank kept
        if len(chosen) < keep:
            heapq.heappush(chosen, (neg, sha, where, data))
        elif neg > chosen[0][0]:
            heapq.heapreplace(chosen, (neg, sha, where, data))
    for _, sha, where, data in sorted(chosen, reverse=True):
        reader.read(sha, where, data)
        rep.not_at_risk_read += 1
    rep.distinct_images = len(seen)
    return rep


def _reason_lookup(risk) -> Callable[[str], str | None]:
    if risk is None:
        return lambda sha: "no_provenance_given"
    if callable(risk):
        return risk
    return lambda sha: risk[sha] if sha in risk else NOT_IN_TABLES


class _Reader:
    """One OCR verdict per distinct image: from the cache, or read and cached."""

    def __init__(self, rep: PixelScanReport, known, engine_name: str, cache_dir: Path | None, values_key: str):
        self.rep, self.known, self.engine_name, self.cache_dir, self.values_key = rep, known, engine_name, cache_dir, values_key
        self.engine = None

    def _engine(self):
        if self.engine is None:
            from medtrinity_assets.deid.ocr import engine_id, get_engine

            self.engine = get_engine(self.engine_name)
            self.rep.engine = engine_id(self.engine)
        return self.engine

    def read(self, sha: str, where: str, data: bytes) -> None:
        from medtrinity_assets.deid.pixels import scan_image

        rep = self.rep
        engine = self._engine()
        cache = (self.cache_dir / sha[:2] / f"{sha}.{rep.engine.replace(' ', '_')}.{self.values_key}.json"
                 if self.cache_dir is not None else None)
        kinds = None
        if cache is not None and cache.exists():
            try:
                kinds = json.loads(cache.read_text())["kinds"]
                rep.cached += 1
            except (ValueError, KeyError):
                kinds = None
        if kinds is None:
            t = time.perf_counter()
            try:
                kinds = scan_image(_decode(data), engine, self.known)
            except Exception as exc:  # an image the check cannot read is itself a failure
                rep.errors.append(f"{where}: {type(exc).__name__}")
                return
            finally:
                rep.ocr_seconds += time.perf_counter() - t
            if cache is not None:
                from medtrinity_assets.storage import atomic_write_bytes

                atomic_write_bytes(cache, json.dumps({"kinds": kinds}).encode())
        rep.images_read += 1
        if kinds:
            rep.images_with_phi.append(f"{where}: {', '.join(kinds)}")
            for k in kinds:
                rep.kinds[k] = rep.kinds.get(k, 0) + 1
