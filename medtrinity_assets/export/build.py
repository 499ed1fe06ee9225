"""One export shard of one format, end to end: read the shard's tables, drop what must not ship,
write the files into a staging folder, seal it with SHA256SUMS and swap it in.

Formats: ``hf`` (Hugging Face Parquet), ``llava`` (conversation JSON), ``webdataset`` (tar shards),
``coco`` (ROIs with RLE masks), ``vqa`` (caption-to-VQA pairs). Each lands in
``<data_root>/exports/<format>/<shard>/`` with its own ``SHA256SUMS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtrinity_assets.export.coco import write_coco
from medtrinity_assets.export.hf_parquet import write_hf_parquet
from medtrinity_assets.export.llava import write_llava
from medtrinity_assets.export.samples import ExportSample, Selection, select_samples
from medtrinity_assets.export.shard_inputs import Exclusions, exclusions, image_index, load_shard
from medtrinity_assets.export.staging import staged_dir
from medtrinity_assets.export.vqa import write_vqa
from medtrinity_assets.export.webdataset import write_webdataset
from medtrinity_assets.quality.leakage import load_eval_hashes
from medtrinity_assets.storage import DataLayout

WRITERS: dict[str, Callable[[list[ExportSample], Path, str], dict[str, int]]] = {
    "hf": lambda s, d, shard: write_hf_parquet(s, d),
    "llava": lambda s, d, shard: write_llava(s, d),
    "webdataset": lambda s, d, shard: write_webdataset(s, d, prefix=shard),
    "coco": lambda s, d, shard: write_coco(s, d),
    "vqa": lambda s, d, shard: write_vqa(s, d),
}
FORMATS = tuple(WRITERS)


def export_dir(layout: DataLayout, fmt: str, shard: str | None = None) -> Path:
    base = layout.exports / fmt
    return base / shard if shard else base


@dataclass
class ShardExport:
    fmt: str
    shard: str
    folder: Path
    selection: Selection
    files: dict[str, int]
    sources: list[str]
    seconds: float
    leaked_total: int = 0
    duplicate_groups_total: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _read_blob(layout: DataLayout, rel: str) -> bytes:
    if not rel:
        raise FileNotFoundError("image row has no image_path")
    return layout.resolve(rel).read_bytes()


def prepare_shard(layout: DataLayout, shard: str, sources: Iterable[str], quality: dict[str, Any],
                  eval_hashes: Path | None) -> tuple[list[ExportSample], Selection, Exclusions, list[str]]:
    sources = list(sources)
    excl = exclusions(image_index(layout, sources), load_eval_hashes(eval_hashes), quality, root=layout.root)
    inputs = load_shard(layout, shard, sources)
    samples, sel = select_samples(
        inputs.triplets,
        inputs.images_by_id,
        inputs.rois_by_id,
        read_image=lambda rel: _read_blob(layout, rel),
        leaked=excl.leaked,
        representative_of=excl.dedup.representative_of(),
        group_members=excl.group_members(),
    )
    return samples, sel, excl, inputs.sources


def export_shard(layout: DataLayout, fmt: str, shard: str, sources: Iterable[str], quality: dict[str, Any],
                 eval_hashes: Path | None) -> ShardExport:
    if fmt not in WRITERS:
        raise ValueError(f"unknown export format {fmt!r}; known: {FORMATS}")
    t0 = time.perf_counter()
    samples, sel, excl, present = prepare_shard(layout, shard, sources, quality, eval_hashes)
    final = export_dir(layout, fmt, shard)
    with staged_dir(final) as tmp:
        files = WRITERS[fmt](samples, tmp, shard)
    return ShardExport(fmt=fmt, shard=shard, folder=final, selection=sel, files=files, sources=present,
                       seconds=time.perf_counter() - t0, leaked_total=len(excl.leaks),
                       duplicate_groups_total=len(excl.dedup.groups))
