"""Re-read an export shard with the reader its format's users have, beyond checksum equality:
a file can hash right and still be unreadable if the writer was wrong."""

from __future__ import annotations

import json
import tarfile
from collections import defaultdict
from pathlib import Path


def read_back(fmt: str, folder: Path) -> tuple[int, list[str]]:
    """(samples read, problems) for one shard folder."""
    folder = Path(folder)
    problems: list[str] = []
    n = 0
    if fmt == "hf":
        import pyarrow.parquet as pq

        for f in sorted(folder.glob("*.parquet")):
            t = pq.read_table(f)
            meta = (t.schema.metadata or {}).get(b"huggingface", b"{}")
            if '"Image"' not in meta.decode():
                problems.append(f"{f.name}: no Image feature in the huggingface metadata")
            for col in ("id", "image", "caption"):
                if col not in t.column_names:
                    problems.append(f"{f.name}: column {col} missing")
            if "image" in t.column_names:
                empty = sum(1 for v in t.column("image").to_pylist() if not (v and v.get("bytes")))
                if empty:
                    problems.append(f"{f.name}: {empty} rows without image bytes")
            n += t.num_rows
    elif fmt in ("llava", "vqa"):
        name = "conversations.json" if fmt == "llava" else "vqa_llava.json"
        recs = json.loads((folder / name).read_text(encoding="utf-8"))
        for r in recs:
            if not (folder / r["image"]).is_file():
                problems.append(f"{name}: image {r['image']} missing")
            if not r.get("conversations") or not r["conversations"][0]["value"].startswith("<image>"):
                problems.append(f"{name}: record {r.get('id')} has no <image> turn")
        if fmt == "vqa":
            for line in (folder / "vqa_pairs.jsonl").read_text(encoding="utf-8").splitlines():
                if line.strip():
                    json.loads(line)
        n = len(recs)
    elif fmt == "webdataset":
        for tar_path in sorted(folder.glob("*.tar")):
            parts: dict[str, set[str]] = defaultdict(set)
            with tarfile.open(tar_path) as tar:
                for m in tar:
                    key, _, ext = m.name.partition(".")
                    parts[key].add(ext)
            for key, exts in parts.items():
                if exts != {"png", "json", "txt"}:
                    problems.append(f"{tar_path.name}: sample {key} has {sorted(exts)}")
            n += len(parts)
    elif fmt == "coco":
        import contextlib
        import io

        from pycocotools.coco import COCO

        with contextlib.redirect_stdout(io.StringIO()):  # COCO prints progress
            coco = COCO(str(folder / "annotations.json"))
        for img in coco.loadImgs(coco.getImgIds()):
            if not (folder / img["file_name"]).is_file():
                problems.append(f"image {img['file_name']} missing")
        for ann in coco.loadAnns(coco.getAnnIds()):
            if coco.annToMask(ann).sum() == 0:
                problems.append(f"annotation {ann['id']} has an empty mask")
        n = len(coco.getImgIds())
    else:
        problems.append(f"unknown export format {fmt!r}")
    return n, problems
