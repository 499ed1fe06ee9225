"""Caption-to-VQA: question–answer pairs from a sample's facts, like the paper's VQA conversion step.

Questions are built from the structured facts (never parsed back out of the prose), so every answer
is as true as the facts. Open questions ask for a value (modality, organ, side, size, texture);
closed ones ask yes/no, with negatives drawn deterministically from other values so that "yes" is not
always the answer. Question types follow VQA-RAD's coarse categories: modality, organ, side
(position), presence, size, texture.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from medtrinity_assets.export.llava import conversation, write_images
from medtrinity_assets.export.samples import ExportSample
from medtrinity_assets.storage import atomic_write_text

MODALITY_NAMES = {
    "CT": "CT", "MR": "MRI", "MRI": "MRI", "CR": "X-ray", "DX": "X-ray", "DR": "X-ray", "XR": "X-ray",
    "US": "ultrasound", "MG": "mammography", "PT": "PET", "NM": "nuclear medicine", "FUNDUS": "fundus photograph",
    "HISTO": "histopathology", "SM": "histopathology", "DERM": "dermoscopy", "XA": "angiography",
}
NEGATIVE_MODALITIES = ("CT", "MRI", "X-ray", "ultrasound", "histopathology")
NEGATIVE_ORGANS = ("brain", "chest", "abdomen", "pelvis", "breast", "knee")
QUESTION_TYPES = ("modality", "organ", "side", "presence", "size", "texture")
SIZE_WORDS = {"small": "small", "medium": "medium", "large": "large", "very_large": "very large"}
MAX_FINDINGS = 3


@dataclass(frozen=True)
class QA:
    qid: str
    sample_id: str
    question: str
    answer: str
    answer_type: str  # OPEN | CLOSED (VQA-RAD's spelling)
    question_type: str

    def as_dict(self, image: str) -> dict:
        return {"qid": self.qid, "image": image, "sample_id": self.sample_id, "question": self.question,
                "answer": self.answer, "answer_type": self.answer_type, "question_type": self.question_type}


def _pick(options: Iterable[str], exclude: set[str], seed: str) -> str | None:
    opts = [o for o in options if o.lower() not in exclude]
    if not opts:
        return None
    return opts[int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16) % len(opts)]


def _label(text: str) -> str:
    return text.replace("_", " ").strip()


def qa_pairs(s: ExportSample, other_findings: Iterable[str] = ()) -> list[QA]:
    """Every QA pair the sample's facts support."""
    out: list[QA] = []

    def add(question: str, answer: str, kind: str, qtype: str) -> None:
        out.append(QA(f"{s.id}-q{len(out):02d}", s.id, question, answer, kind, qtype))

    modality = MODALITY_NAMES.get(s.modality.upper(), "") if s.modality else ""
    if modality:
        add("What imaging modality was used to acquire this image?", modality, "OPEN", "modality")
        add(f"Is this a {modality} image?", "yes", "CLOSED", "modality")
        neg = _pick(NEGATIVE_MODALITIES, {modality.lower()}, s.id + "m")
        if neg:
            add(f"Is this a {neg} image?", "no", "CLOSED", "modality")
    organ = _label(s.organ)
    if organ:
        add("Which organ or body region is shown in this image?", organ, "OPEN", "organ")
        add(f"Does this image show the {organ}?", "yes", "CLOSED", "organ")
        neg = _pick(NEGATIVE_ORGANS, {organ.lower()}, s.id + "o")
        if neg:
            add(f"Does this image show the {neg}?", "no", "CLOSED", "organ")
    findings = [r for r in s.rois if (r.get("kind") or "finding") == "finding" and r.get("label")]
    seen: set[str] = set()
    for r in findings:
        label = _label(r["label"])
        if label in seen or len(seen) >= MAX_FINDINGS:
            continue
        seen.add(label)
        add(f"Is there a {label} in this image?", "yes", "CLOSED", "presence")
        side = r.get("side") or ""
        if side in ("left", "right"):
            add(f"On which side of the patient is the {label}?", side, "OPEN", "side")
            asked = _pick(("left", "right"), set(), s.id + label + "s")
            add(f"Is the {label} on the patient's {asked} side?", "yes" if asked == side else "no", "CLOSED", "side")
        size = SIZE_WORDS.get(r.get("size_class") or "", "")
        if size:
            add(f"How large is the {label}?", size, "OPEN", "size")
            add(f"Is the {label} large?", "yes" if "large" in size else "no", "CLOSED", "size")
        texture = r.get("texture") or ""
        if texture in ("homogeneous", "heterogeneous"):
            add(f"What is the texture of the {label}?", texture, "OPEN", "texture")
            add(f"Is the {label} heterogeneous?", "yes" if texture == "heterogeneous" else "no", "CLOSED", "texture")
        intensity = (r.get("intensity") or "").replace("_", " ")
        if intensity:
            add(f"How does the {label} appear compared with the surrounding tissue?", intensity, "OPEN", "texture")
    # absence: only where the ROIs are ground truth (a model's silence is not proof of absence)
    if s.rois and all(r.get("origin") == "ground_truth" for r in s.rois):
        absent = _pick(sorted({_label(f) for f in other_findings}), {x.lower() for x in seen}, s.id + "p")
        if absent:
            add(f"Is there a {absent} in this image?", "no", "CLOSED", "presence")
    return out


def write_vqa(samples: list[ExportSample], folder: Path) -> dict[str, int]:
    """``vqa_pairs.jsonl`` (flat, for the evaluation harness), ``vqa_llava.json`` (multi-turn LLaVA
    instruction data, one record per image) and the images."""
    folder = Path(folder)
    write_images(samples, folder)
    all_findings = sorted({r["label"] for s in samples for r in s.rois
                           if (r.get("kind") or "finding") == "finding" and r.get("label")})
    flat, llava = [], []
    counts = {t: 0 for t in QUESTION_TYPES}
    for s in samples:
        image = f"images/{s.key}.png"
        pairs = qa_pairs(s, all_findings)
        for qa in pairs:
            flat.append(json.dumps(qa.as_dict(image), ensure_ascii=False))
            counts[qa.question_type] += 1
        if pairs:
            llava.append(conversation(s.id, image, [(qa.question, qa.answer) for qa in pairs]))
    atomic_write_text(folder / "vqa_pairs.jsonl", "\n".join(flat) + ("\n" if flat else ""))
    atomic_write_text(folder / "vqa_llava.json", json.dumps(llava, indent=1, ensure_ascii=False))
    return {"pairs": len(flat), "images": len(llava), **{f"type_{k}": v for k, v in counts.items()}}
