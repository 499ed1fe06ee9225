"""LLaVA conversation JSON: one record per image, a caption-style instruction and the description.

Layout: ``<folder>/images/<key>.png`` and ``<folder>/conversations.json`` (a list of
``{"id", "image", "conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}``), which LLaVA's
training scripts read with ``--image_folder <folder>``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from medtrinity_assets.export.samples import ExportSample
from medtrinity_assets.storage import atomic_write_bytes, atomic_write_text

CAPTION_INSTRUCTIONS = (
    "Describe this medical image in detail.",
    "Give a detailed description of the image, including the modality, the organ and any region of interest.",
    "What does this image show? Describe the findings, their location and their appearance.",
    "Write a report-style description of this image covering modality, anatomy, regions of interest, texture and relations.",
    "Explain what can be seen in this scan, region by region.",
)


def instruction_for(sample_id: str) -> str:
    """A stable choice among the instructions, so reruns write identical files."""
    h = int(hashlib.sha256(sample_id.encode()).hexdigest()[:8], 16)
    return CAPTION_INSTRUCTIONS[h % len(CAPTION_INSTRUCTIONS)]


def conversation(sample_id: str, image: str, turns: list[tuple[str, str]]) -> dict:
    """A LLaVA record: the image token goes with the first human turn only."""
    conv = []
    for n, (question, answer) in enumerate(turns):
        conv.append({"from": "human", "value": ("<image>\n" if n == 0 else "") + question})
        conv.append({"from": "gpt", "value": answer})
    return {"id": sample_id, "image": image, "conversations": conv}


def write_images(samples: list[ExportSample], folder: Path) -> None:
    for s in samples:
        atomic_write_bytes(Path(folder) / "images" / f"{s.key}.png", s.image_bytes)


def write_llava(samples: list[ExportSample], folder: Path) -> dict[str, int]:
    folder = Path(folder)
    write_images(samples, folder)
    records = [conversation(s.id, f"images/{s.key}.png", [(instruction_for(s.id), s.caption)]) for s in samples]
    atomic_write_text(folder / "conversations.json", json.dumps(records, indent=1, ensure_ascii=False))
    return {"records": len(records), "images": len(samples)}
