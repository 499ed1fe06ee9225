"""Score VQA predictions the way the MedTrinity / LLaVA-Med papers do.

- closed questions: accuracy. A yes/no answer is compared with the first "yes" or "no" in the prediction;
  a multiple-choice letter with the letter the prediction opens with ("B", "(B)", "B. liver"); any other
  closed answer (VQA-RAD's "CT" to "Is this a CT or an MRI?") counts when all its words are in the prediction;
- open questions: token recall, the share of the ground-truth answer's tokens found in the prediction.

Ground truth comes in the benchmarks' own forms: VQA-RAD (JSON list, ``answer_type`` OPEN/CLOSED,
``question_type``), SLAKE (JSON list, ``answer_type``, ``content_type``, ``q_lang``: English only),
PathVQA (JSON/JSONL with question and answer; yes/no answers are closed), or this project's
``exports/vqa/<split>.jsonl``. Predictions are JSONL lines with ``question_id``/``qid`` and
``text``/``answer``/``prediction`` (LLaVA's answer-file format).

    python -m medtrinity_assets.export.vqa_eval --gt test.json --pred answers.jsonl --format slake
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = ("vqa_rad", "slake", "pathvqa", "medtrinity")
_ARTICLES = {"a", "an", "the"}


@dataclass(frozen=True)
class GroundTruth:
    qid: str
    question: str
    answer: str
    answer_type: str  # open | closed
    question_type: str


def normalise(text: str) -> list[str]:
    """Lower case, punctuation removed, articles dropped: the tokens that are compared."""
    text = re.sub(r"[^a-z0-9\s]", " ", str(text).lower())
    return [t for t in text.split() if t not in _ARTICLES]


def yes_no(text: str) -> str:
    for tok in normalise(text):
        if tok in ("yes", "no"):
            return tok
    return ""


_LETTER = re.compile(r"^\s*\(?([A-Za-z])(?:[).:,]|\s|$)")


def choice_letter(text: str) -> str:
    """The option letter a prediction opens with ('B', '(b)', 'B. liver' -> 'B'), or ''."""
    m = _LETTER.match(str(text))
    return m.group(1).upper() if m else ""


def closed_correct(prediction: str, answer: str) -> bool:
    if yes_no(answer):
        return yes_no(prediction) == yes_no(answer)
    if len(answer.strip()) == 1 and answer.strip().isalpha():
        return choice_letter(prediction) == answer.strip().upper()
    gt = normalise(answer)
    return bool(gt) and set(gt) <= set(normalise(prediction))


def token_recall(prediction: str, answer: str) -> float:
    gt = normalise(answer)
    if not gt:
        return 0.0
    pred = set(normalise(prediction))
    return sum(1 for t in gt if t in pred) / len(gt)


def _read_json_or_jsonl(path: Path) -> list[dict[str, Any]]:
    text = Path(path).read_text(encoding="utf-8").strip()
    if not text:
        return []
    if text[0] == "[":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _closed_by_answer(answer: str) -> str:
    return "closed" if str(answer).strip().lower() in ("yes", "no") else "open"


def load_ground_truth(path: Path, fmt: str) -> list[GroundTruth]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown benchmark format {fmt!r}; use one of {FORMATS}")
    out = []
    for n, r in enumerate(_read_json_or_jsonl(Path(path))):
        if fmt == "slake" and str(r.get("q_lang", "en")).lower() != "en":
            continue
        qid = str(r.get("qid", r.get("question_id", r.get("id", n))))
        answer = str(r.get("answer", r.get("answers", "")))
        if fmt == "pathvqa":
            kind = _closed_by_answer(answer)
            qtype = "yes/no" if kind == "closed" else "open"
        else:
            kind = str(r.get("answer_type") or _closed_by_answer(answer)).strip().lower()
            qtype = str(r.get("question_type") or r.get("content_type") or kind)
        kind = "closed" if kind.startswith("clos") else "open"
        out.append(GroundTruth(qid, str(r.get("question", "")), answer, kind, qtype.strip().lower()))
    return out


def load_predictions(path: Path) -> dict[str, str]:
    preds = {}
    for r in _read_json_or_jsonl(Path(path)):
        qid = str(r.get("question_id", r.get("qid", r.get("id"))))
        preds[qid] = str(r.get("text", r.get("answer", r.get("prediction", ""))))
    return preds


def evaluate(truth: Iterable[GroundTruth], predictions: Mapping[str, str]) -> dict[str, Any]:
    """Closed accuracy, open recall, overall and per question type; a missing prediction scores 0."""
    sums: dict[tuple[str, str], list[float]] = defaultdict(list)
    missing = 0
    for gt in truth:
        pred = predictions.get(gt.qid)
        if pred is None:
            missing += 1
            pred = ""
        if gt.answer_type == "closed":
            score = 1.0 if closed_correct(pred, gt.answer) else 0.0
        else:
            score = token_recall(pred, gt.answer)
        sums[(gt.answer_type, gt.question_type)].append(score)

    def mean(xs: list[float]) -> float:
        return round(sum(xs) / len(xs), 4) if xs else 0.0

    closed = [s for (k, _), v in sums.items() if k == "closed" for s in v]
    open_ = [s for (k, _), v in sums.items() if k == "open" for s in v]
    per_type: dict[str, dict[str, Any]] = {}
    for (kind, qtype), v in sorted(sums.items()):
        entry = per_type.setdefault(qtype, {})
        entry[f"{kind}_{'accuracy' if kind == 'closed' else 'recall'}"] = mean(v)
        entry[f"{kind}_n"] = len(v)
    return {
        "closed_accuracy": mean(closed), "closed_n": len(closed),
        "open_recall": mean(open_), "open_n": len(open_),
        "missing_predictions": missing, "per_question_type": per_type,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Score VQA predictions: closed by accuracy, open by token recall.")
    ap.add_argument("--gt", required=True, type=Path, help="benchmark questions with answers")
    ap.add_argument("--pred", required=True, type=Path, help="JSONL predictions (question_id, text)")
    ap.add_argument("--format", default="medtrinity", choices=FORMATS)
    args = ap.parse_args(argv)
    report = evaluate(load_ground_truth(args.gt, args.format), load_predictions(args.pred))
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
