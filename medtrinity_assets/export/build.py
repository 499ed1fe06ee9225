"""One shard of one export format (a *part*), and where parts and dataset folders live.

A part is what the Dagster partition ``export_<format>[shard]`` writes: the shard's samples in that
format, per split, sealed with ``SHA256SUMS`` in ``<data_root>/export_parts/<format>/<shard>/`` with a
``part.json`` manifest (samples per split, the ROI labels used, the images the records point at, which
sit beside them as hard links to the blobs).
Parts are not the dataset: :mod:`medtrinity_assets.export.merge` turns them into the per-split files
under ``<data_root>/exports/<format>/`` that users read. Dropping what must not ship (failed
triplets, evaluation-set leaks, non-representative near-duplicates) happens here, from the
``near_duplicates`` asset's tables.

Formats: ``hf`` (Hugging Face Parquet), ``llava`` (conversation JSON), ``webdataset`` (tar shards),
``coco`` (ROIs with RLE masks), ``vqa`` (question-answer pairs from the facts).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from medtrinity_assets.export import coco, hf_parquet, llava, vqa, webdataset
from medtrinity_assets.export.categories import labels_of
from medtrinity_assets.export.images import place_all
from medtrinity_assets.export.samples import ExportSample, Selection, select_samples
from medtrinity_assets.export.shard_inputs import load_shard
from medtrinity_assets.export.staging import staged_dir
from medtrinity_assets.quality.near_duplicates import Exclusions
from medtrinity_assets.storage import DataLayout, atomic_write_text

PART_WRITERS: dict[str, Callable[[list[ExportSample], Path, str], dict[str, int]]] = {
    "hf": hf_parquet.write_part,
    "llava": llava.write_part,
    "webdataset": webdataset.write_part,
    "coco": coco.write_part,
    "vqa": vqa.write_part,
}
FORMATS = tuple(PART_WRITERS)
EMBEDDED_IMAGES = frozenset({"hf", "webdataset"})  # the image bytes live inside the files
PARTS_FOLDER = "export_parts"
PART_MANIFEST = "part.json"


def part_dir(layout: DataLayout, fmt: str, shard: str) -> Path:
    return layout.root / PARTS_FOLDER / fmt / shard


def dataset_dir(layout: DataLayout, fmt: str) -> Path:
    return layout.exports / fmt


@dataclass
class PartExport:
    fmt: str
    shard: str
    folder: Path
    selection: Selection
    files: dict[str, int]
    sources: list[str]
    seconds: float


def _blob_reader(layout: DataLayout, embed: bool) -> Callable[[str], bytes]:
    """Bytes of an image blob for the formats that embed them; for the others only its presence
    (they link the blob itself into the dataset folder)."""

    def read(rel: str) -> bytes:
        if not rel:
            raise FileNotFoundError("image row has no image_path")
        path = layout.resolve(rel)
        if embed:
            return path.read_bytes()
        if not path.is_file():
            raise FileNotFoundError(path)
        return b""

    return read


def shard_samples(layout: DataLayout, shard: str, sources: Iterable[str], excl: Exclusions,
                  embed_images: bool = True) -> tuple[list[ExportSample], Selection, list[str]]:
    """The shard's exportable samples (every source), and what was dropped and why."""
    inputs = load_shard(layout, shard, list(sources))
    samples, sel = select_samples(
        inputs.triplets,
        inputs.images_by_id,
        inputs.rois_by_id,
        read_image=_blob_reader(layout, embed_images),
        leaked=excl.leaked,
        representative_of=excl.dedup.representative_of(),
        group_members=excl.group_members(),
        image_facts_by_id=inputs.image_facts_by_id,
    )
    return samples, sel, inputs.sources


def part_manifest(fmt: str, shard: str, samples: list[ExportSample]) -> dict:
    splits: dict[str, int] = {}
    for s in samples:
        splits[s.split] = splits.get(s.split, 0) + 1
    return {
        "format": fmt,
        "shard": shard,
        "samples": dict(sorted(splits.items())),
        "labels": dict(sorted(labels_of(r for s in samples for r in s.rois).items())),
        "images": {} if fmt in EMBEDDED_IMAGES else {llava.image_ref(s): s.image_path for s in samples},
    }


def export_part(layout: DataLayout, fmt: str, shard: str, sources: Iterable[str], excl: Exclusions) -> PartExport:
    """Write ``export_parts/<fmt>/<shard>/`` (staged, sealed, swapped in whole)."""
    if fmt not in PART_WRITERS:
        raise ValueError(f"unknown export format {fmt!r}; known: {FORMATS}")
    t0 = time.perf_counter()
    samples, sel, present = shard_samples(layout, shard, sources, excl, embed_images=fmt in EMBEDDED_IMAGES)
    final = part_dir(layout, fmt, shard)
    manifest = part_manifest(fmt, shard, samples)
    with staged_dir(final) as tmp:
        files = PART_WRITERS[fmt](samples, tmp, shard)
        # the images beside the records, as hard links to the blobs: a part is complete on its own (its checks
        # re-read and OCR it like the dataset folder) and costs no image bytes
        place_all({rel: layout.resolve(blob) for rel, blob in manifest["images"].items()}, tmp)
        atomic_write_text(tmp / PART_MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    return PartExport(fmt=fmt, shard=shard, folder=final, selection=sel, files=files, sources=present,
                      seconds=time.perf_counter() - t0)
