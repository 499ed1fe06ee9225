"""WebDataset tar shards per split: ``<key>.png``, ``<key>.json`` (everything but the pixels), ``<key>.txt``
(the caption). Members are written in key order with fixed owners and times, so a rerun produces the
same bytes and the same SHA256SUMS.

A shard's part is ``<split>-<shard>-<n>.tar`` (at most ``MAX_PER_TAR`` samples each); the dataset folder
links the parts unchanged (a split is the glob ``webdataset/<split>-*.tar``): tars are the unit a
WebDataset reader streams, so merging them would only rewrite the same bytes.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from medtrinity_assets.export.samples import ExportSample
from medtrinity_assets.storage import atomic_write_bytes

MAX_PER_TAR = 1000


def sample_json(s: ExportSample) -> dict:
    return {
        "id": s.id, "caption": s.caption, "coarse_caption": s.coarse_caption, "modality": s.modality,
        "organ": s.organ, "disease": s.disease, "labels": s.labels, "split": s.split, "source": s.source,
        "licence": s.licence, "subject_key": s.subject_key, "volume_ref": s.volume_ref,
        "slice_index": s.slice_index, "width": s.width, "height": s.height, "image_sha256": s.image_sha256,
        "rois": s.rois, "attributes": s.attributes, "generator": s.generator,
        "prompt_sha256": s.prompt_sha256, "duplicates": s.duplicates,
    }


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_part(samples: list[ExportSample], folder: Path, shard: str, max_per_tar: int = MAX_PER_TAR) -> dict[str, int]:
    """``<split>-<shard>-000000.tar`` ... per split present; returns samples per tar."""
    counts: dict[str, int] = {}
    by_split: dict[str, list[ExportSample]] = {}
    for s in sorted(samples, key=lambda s: s.key):
        by_split.setdefault(s.split, []).append(s)
    for split, ordered in sorted(by_split.items()):
        for n in range(0, len(ordered), max_per_tar):
            chunk = ordered[n:n + max_per_tar]
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for s in chunk:
                    _add(tar, f"{s.key}.png", s.image_bytes)
                    _add(tar, f"{s.key}.json", json.dumps(sample_json(s), ensure_ascii=False, sort_keys=True).encode())
                    _add(tar, f"{s.key}.txt", s.caption.encode("utf-8"))
            name = f"{split}-{shard}-{n // max_per_tar:06d}.tar"
            atomic_write_bytes(Path(folder) / name, buf.getvalue())
            counts[name] = len(chunk)
    return counts


def dataset_files(part_folder: Path, shard: str) -> dict[str, Path]:
    """Dataset path -> part file: the tars keep their names (they already carry split and shard)."""
    return {p.name: p for p in sorted(Path(part_folder).glob("*.tar"))}
