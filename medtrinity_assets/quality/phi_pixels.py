"""PHI in exported pixels: OCR every exported image and fail on any identifier it reads.

The byte scan (:mod:`medtrinity_assets.quality.phi`) cannot see text drawn into an image. This check
extracts every image of an export shard -- PNG/JPEG files, tar members (WebDataset), image bytes in
Parquet cells (HF) -- reads each distinct image once with the OCR engine, and classifies what it reads
with the same detector as ingest (:func:`medtrinity_assets.deid.pixels.classify_boxes`): any header
value of the inputs, or anything that looks like a person name, ID, date or time, fails the shard.

All images are read by default. ``quality.phi_pixel_sample: n`` reads a seeded sample of ``n`` distinct
images per shard instead; the report then states the bound: if a fraction ``p`` of the shard's images
carried readable PHI, the sample misses all of them with probability ``(1 - p)^n`` (n = 59 finds
p >= 5 % with 95 % confidence).

Verdicts are cached per image content, engine version and searched values under
``<data_root>/cache/phi_ocr/`` (kinds only, never text; the values enter the key as a salted HMAC),
so the five export formats, which share their images, cost one OCR pass.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import random
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


@dataclass
class PixelScanReport:
    images_found: int = 0  # image occurrences in the shard
    distinct_images: int = 0
    images_read: int = 0  # distinct images OCR'd (or taken from the cache)
    cached: int = 0
    images_with_phi: list[str] = field(default_factory=list)  # "<where>: <kinds>" (no text)
    kinds: dict[str, int] = field(default_factory=dict)
    engine: str = ""
    sampled: bool = False
    miss_bound_at_5pct: float | None = None  # P(sample misses everything | 5 % of images carry PHI)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.images_with_phi and not self.errors

    def metadata(self) -> dict:
        return {"pixel_images_found": self.images_found, "pixel_distinct_images": self.distinct_images,
                "pixel_images_read": self.images_read, "pixel_cached": self.cached,
                "pixel_images_with_phi": len(self.images_with_phi), "pixel_kinds": self.kinds,
                "pixel_ocr_engine": self.engine, "pixel_sampled": self.sampled,
                "pixel_miss_probability_if_5pct_carry_phi": self.miss_bound_at_5pct}


def _is_image(data: bytes) -> bool:
    return data.startswith(_MAGIC)


def iter_images(folder: Path) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) of every image in an export folder: files, tar members, Parquet cells."""
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

    table = pq.read_table(path)
    for col in table.column_names:
        t = table.schema.field(col).type
        if not (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_struct(t)):
            continue
        for i, v in enumerate(table.column(col).to_pylist()):
            data = v.get("bytes") if isinstance(v, dict) else v
            if isinstance(data, (bytes, bytearray)) and _is_image(bytes(data)):
                yield f"{rel}:{col}[{i}]", bytes(data)


def _decode(data: bytes):
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()
        arr = np.asarray(im)
    if arr.dtype != np.uint8:
        arr = (arr / max(1, arr.max()) * 255).astype(np.uint8)
    return arr


def scan_export_pixels(folder: Path, identifiers, *, cache_dir: Path | None = None, salt: str = "",
                       engine_name: str = "rapidocr", sample: int = 0, seed: int = 0,
                       public_words=()) -> PixelScanReport:
    """OCR the images of one export shard folder (see module doc)."""
    from medtrinity_assets.deid.detect import KnownValues
    from medtrinity_assets.deid.ocr import engine_id, get_engine
    from medtrinity_assets.deid.pixels import scan_image

    rep = PixelScanReport()
    by_sha: dict[str, tuple[str, bytes]] = {}
    for where, data in iter_images(folder):
        rep.images_found += 1
        by_sha.setdefault(hashlib.sha256(data).hexdigest(), (where, data))
    rep.distinct_images = len(by_sha)
    shas = sorted(by_sha)
    if sample and sample < len(shas):
        shas = sorted(random.Random(seed).sample(shas, sample))
        rep.sampled = True
        rep.miss_bound_at_5pct = round(math.pow(0.95, sample), 4)
    if not shas:
        return rep
    engine = get_engine(engine_name)
    rep.engine = engine_id(engine)
    known = KnownValues.from_values(identifiers, public_words=public_words)
    values_key = hmac.new(salt.encode(), json.dumps(sorted(map(str, identifiers))).encode(), hashlib.sha256).hexdigest()[:16]
    for sha in shas:
        where, data = by_sha[sha]
        cache = (Path(cache_dir) / sha[:2] / f"{sha}.{rep.engine.replace(' ', '_')}.{values_key}.json") if cache_dir else None
        kinds = None
        if cache is not None and cache.exists():
            try:
                kinds = json.loads(cache.read_text())["kinds"]
                rep.cached += 1
            except (ValueError, KeyError):
                kinds = None
        if kinds is None:
            try:
                kinds = scan_image(_decode(data), engine, known)
            except Exception as exc:  # an image the check cannot read is itself a failure
                rep.errors.append(f"{where}: {type(exc).__name__}")
                continue
            if cache is not None:
                from medtrinity_assets.storage import atomic_write_bytes

                atomic_write_bytes(cache, json.dumps({"kinds": kinds}).encode())
        rep.images_read += 1
        if kinds:
            rep.images_with_phi.append(f"{where}: {', '.join(kinds)}")
            for k in kinds:
                rep.kinds[k] = rep.kinds.get(k, 0) + 1
    return rep
