"""LLaVA conversation JSON: one record per image, a caption-style instruction and the description.

Dataset layout, one file per split: ``llava/train.json``, ``llava/validation.json``, ``llava/test.json``,
each a list of ``{"id", "image", "conversations": [{"from": "human", ...}, {"from": "gpt", ...}], "split"}``
with ``image`` relative to the ``llava/`` folder (``images/<aa>/<key>.png``). LLaVA's training script reads it
with ``--data_path llava/train.json --image_folder llava``. A shard's part holds the same records per
split; the dataset folder concatenates them in id order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from medtrinity_assets.export.samples import ExportSample
from medtrinity_assets.quality.splits import SPLITS
from medtrinity_assets.storage import atomic_write_text

CAPTION_INSTRUCTIONS = (
    "Describe this medical image in detail.",
    "Give a detailed description of the image, including the modality, the organ and any abnormal finding.",
    "What does this image show? Describe the findings, their location and their appearance.",
    "Write a report-style description of this image covering modality, anatomy, findings, texture and relations.",
    "Explain what can be seen in this scan, region by region.",
)


def instruction_for(sample_id: str) -> str:
    """A stable choice among the instructions, so reruns write identical files."""
    h = int(hashlib.sha256(sample_id.encode()).hexdigest()[:8], 16)
    return CAPTION_INSTRUCTIONS[h % len(CAPTION_INSTRUCTIONS)]


def image_ref(s: ExportSample) -> str:
    """Where the loose-file formats (llava, vqa, coco) put a sample's image, relative to their folder
    (256 sub-folders by the key's first two characters: millions of files never share one folder)."""
    return f"images/{s.key[:2]}/{s.key}.png"


def conversation(sample_id: str, image: str, turns: list[tuple[str, str]], split: str) -> dict:
    """A LLaVA record: the image token goes with the first human turn only."""
    conv = []
    for n, (question, answer) in enumerate(turns):
        conv.append({"from": "human", "value": ("<image>\n" if n == 0 else "") + question})
        conv.append({"from": "gpt", "value": answer})
    return {"id": sample_id, "image": image, "conversations": conv, "split": split}


def write_json_list(path: Path, records: list[dict]) -> None:
    """One record per line inside a JSON list: diffable, and ``json.load`` reads it like any other."""
    body = ",\n".join(json.dumps(r, ensure_ascii=False, sort_keys=True) for r in records)
    atomic_write_text(path, "[\n" + body + "\n]\n" if records else "[]\n")


def write_part(samples: list[ExportSample], folder: Path, shard: str) -> dict[str, int]:
    """``<split>.json`` for every split (empty lists included), records in id order."""
    by_split: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for s in sorted(samples, key=lambda s: s.id):
        by_split.setdefault(s.split, []).append(
            conversation(s.id, image_ref(s), [(instruction_for(s.id), s.caption)], s.split))
    for split, records in by_split.items():
        write_json_list(Path(folder) / f"{split}.json", records)
    return {f"{split}.json": len(r) for split, r in by_split.items()}


def merge_parts(part_folders: Iterable[Path], folder: Path) -> dict[str, int]:
    """``<split>.json`` of the dataset: every part's records of that split, in id order."""
    folders = list(part_folders)
    counts = {}
    for split in SPLITS:
        records = [r for p in folders if (p / f"{split}.json").is_file()
                   for r in json.loads((p / f"{split}.json").read_text(encoding="utf-8"))]
        records.sort(key=lambda r: r["id"])
        write_json_list(Path(folder) / f"{split}.json", records)
        counts[f"{split}.json"] = len(records)
    return counts
