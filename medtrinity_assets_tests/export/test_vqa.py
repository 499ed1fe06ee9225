"""VQA from the facts (answers true to the facts, absence only where ground truth says so, names that do not
give the answer away, correct articles, balanced yes/no, LLaVA-1.5 instructions) and the scorer (closed by
accuracy, open by token recall) on the benchmarks' own forms."""

import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from medtrinity_assets.export.samples import ExportSample
from medtrinity_assets.export.vqa import (
    MULTIPLE_CHOICE,
    SHORT_ANSWER,
    ImageContext,
    answer_in_question,
    balance,
    candidates,
    summarise,
)
from medtrinity_assets.export.vqa_eval import (
    closed_correct,
    evaluate,
    load_ground_truth,
    load_predictions,
    main,
    token_recall,
    yes_no,
)
from medtrinity_assets.quality.splits import SPLITS
from medtrinity_assets.roi.facts import Relations, RoiFacts
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.exports import build_dataset, export_dataset

KNOWN = ImageContext(known_labels=frozenset({"kidney", "liver", "spleen", "tumour", "cyst", "nodule"}),
                     label_kinds={"kidney": "anatomy", "liver": "anatomy", "spleen": "anatomy", "tumour": "finding",
                                  "cyst": "finding", "nodule": "finding"})


def _roi(label, kind="finding", origin="ground_truth", relations=None, **facts) -> RoiFacts:
    rel = Relations.from_json({"distance_unit": "mm", **(relations or {})})
    return RoiFacts(label=label, kind=kind, origin=origin, relations=rel, **facts)


def _sample(origin="ground_truth", modality="MR") -> ExportSample:
    tumour = _roi("hyperintense_kidney_tumour", origin=origin, side="right", equivalent_diameter_mm=31.6,
                  intensity="hyperintense", texture="heterogeneous", shape="lobulated", margin="ill_defined",
                  area_fraction=0.05, relations={"inside": ["kidney"], "adjacent": ["liver"], "other_lesions": [
                      {"roi_id": "c", "label": "cyst", "side": "left", "distance": 42.4}]})
    cyst = _roi("cyst", origin=origin, side="left", equivalent_diameter_mm=9.2, intensity="hypointense",
                texture="homogeneous", shape="round", margin="well_defined", area_fraction=0.01,
                relations={"inside": ["spleen"], "other_lesions": [
                    {"roi_id": "t", "label": "hyperintense_kidney_tumour", "side": "right", "distance": 42.4}]})
    facts = [tumour, cyst, _roi("kidney", "anatomy"), _roi("liver", "anatomy"), _roi("spleen", "anatomy")]
    return ExportSample(id="s1", image_bytes=b"", image_sha256="", width=64, height=64, caption="", modality=modality,
                        organ="abdomen", facts=facts, split="train", annotated=True)


def _pairs(c):
    """question -> answer, taking the yes wording of every yes/no slot and the no wording apart."""
    out = {}
    for item in c.items:
        if item["kind"] == "yes_no":
            if item["yes"]:
                out[item["yes"]] = "yes"
            if item["no"]:
                out[item["no"]] = "no"
        else:
            out[item["question"]] = item["answer"]
    return out


def test_questions_follow_the_facts():
    c = candidates(_sample(), KNOWN)
    qa = _pairs(c)
    types = {i["type"] for i in c.items}
    assert len(types) >= 10 and {"relation", "counting", "organ_location", "size_comparison", "multiple_choice"} <= types
    modality_q = next(q for q, a in qa.items() if a == "MRI")
    assert "modality" in modality_q or "technique" in modality_q or "imaging" in modality_q
    assert qa["Is this an MRI image?"] == "yes" and any(q.startswith("Is this a") and a == "no" for q, a in qa.items())
    assert [a for q, a in qa.items() if q.startswith("How many cysts")] == ["1"]
    assert qa["How far apart are the hyperintense kidney tumour and the cyst?"] == "42 mm"
    assert qa["Is the hyperintense kidney tumour larger than the cyst?"] == "yes"
    assert qa["Is the cyst larger than the hyperintense kidney tumour?"] == "no"
    assert "By how many millimetres does the diameter of the hyperintense kidney tumour exceed that of the cyst?" in qa
    # the tumour's containing organ and intensity are asked without the words that answer them
    location = [q for q in qa if qa[q] == "kidney" and q.startswith(("Which organ contains", "In which organ"))]
    assert location and all("kidney" not in q.lower() for q in location)
    intensity = [q for q, a in qa.items() if a == "hyperintense"]
    assert intensity and all("hyperintense" not in q for q in intensity)
    assert any(a == "32 mm" for a in qa.values())  # 31.6 mm rounded; never a guessed unit
    assert qa["Does the hyperintense kidney tumour lie next to the liver?"] == "yes"
    choice = [i for i in c.items if i["kind"] == "choice"]
    assert choice and all(re.fullmatch("[A-D]", i["answer"]) for i in choice)
    for i in choice:  # the letter points at the right option
        option = dict(line.split(". ", 1) for line in i["question"].splitlines()[1:])[i["answer"]]
        assert option == i["answer_text"]
    assert candidates(_sample(), KNOWN).items == c.items  # deterministic


def test_no_answer_sits_in_its_question_and_articles_are_right():
    for modality, article in (("MR", "an MRI"), ("CR", "an X-ray"), ("US", "an ultrasound"), ("CT", "a CT")):
        qa = _pairs(candidates(_sample(modality=modality), KNOWN))
        assert f"Is this {article} image?" in qa
        for q in qa:
            assert not re.search(r"\ba ([aeiou]|MRI|X-ray)", q) and not re.search(r"\ban [bcdfgjklpqrstvwz]", q), q
    for item in candidates(_sample(), KNOWN).items:
        if item["kind"] == "open":
            assert not answer_in_question(item["question"], item["answer"]), item
    assert answer_in_question("How does the hyperdense lesion appear?", "hyperdense")


def test_no_body_region_is_asked_of_a_slide_or_a_photograph():
    slide = ExportSample(id="h1", image_bytes=b"", image_sha256="", width=64, height=64, caption="", modality="HISTOLOGY",
                         organ="colon", split="train")
    types = {i["type"] for i in candidates(slide).items}
    assert "modality" in types and "body_region" not in types
    assert "body_region" in {i["type"] for i in candidates(_sample(), KNOWN).items}


def test_absence_and_counts_need_ground_truth():
    expert = candidates(_sample(origin="expert:lesion_seg@1"), KNOWN)
    presence = [i for i in expert.items if i["type"] == "presence"]
    assert presence and all(i["no"] is None for i in presence)  # a model's silence is no proof of absence
    assert not [i for i in expert.items if i["type"] == "counting"]
    unannotated = candidates(_sample(), ImageContext())
    assert not [i for i in unannotated.items if i["type"] == "counting"]
    truth = candidates(_sample(), KNOWN)
    assert any(i["type"] == "presence" and i["no"] and "nodule" in i["no"] for i in truth.items)


def test_balance_makes_yes_and_no_equally_frequent():
    rng = random.Random(3)
    for _ in range(200):
        slots = []
        for n in range(rng.randrange(1, 40)):
            kind = rng.choice(["yes", "no", "both", "yes", "yes"])
            slots.append((f"s{n}", {"yes": "q?" if kind in ("yes", "both") else None,
                                    "no": "q?" if kind in ("no", "both") else None}))
        chosen = balance(slots)
        answers = Counter(chosen.values())
        assert answers["yes"] == answers["no"]
        flexible = sum(1 for _, s in slots if s["yes"] and s["no"])
        forced_yes = sum(1 for _, s in slots if s["yes"] and not s["no"])
        forced_no = len(slots) - flexible - forced_yes
        # nothing dropped beyond what balance requires (and the odd one out)
        assert answers["yes"] == min(forced_yes + flexible, forced_no + flexible, len(slots) // 2)
        for sid, answer in chosen.items():
            assert dict(slots)[sid][answer]


@pytest.mark.slow
def test_merged_vqa_is_balanced_per_type_and_split_and_carries_instructions(tmp_path: Path):
    layout = DataLayout(tmp_path / "out")
    build_dataset(layout)
    export_dataset(layout)
    by_split = {split: [json.loads(line) for line in (layout.exports / "vqa" / f"{split}.jsonl").read_text().splitlines()]
                for split in SPLITS}
    yes_no_counts = defaultdict(Counter)
    for split, pairs in by_split.items():
        for p in pairs:
            instruction = MULTIPLE_CHOICE if p["question_type"] == "multiple_choice" else SHORT_ANSWER
            assert p["text"] == f"{p['question']}\n{instruction}"
            if p["answer"] in ("yes", "no"):
                assert p["answer_type"] == "CLOSED"
                yes_no_counts[(split, p["question_type"])][p["answer"]] += 1
            if p["answer_type"] == "OPEN":
                assert not answer_in_question(p["question"], p["answer"])
    assert yes_no_counts and all(c["yes"] == c["no"] for c in yes_no_counts.values())
    summary = summarise(p for pairs in by_split.values() for p in pairs)
    assert len(summary["question_types"]) >= 10
    assert all(0.45 <= t["yes_share"] <= 0.55 for t in summary["question_types"].values() if "yes_share" in t)


def test_metrics():
    assert token_recall("The lesion is in the right lung", "right lung") == 1.0
    assert token_recall("left", "right lung") == 0.0
    assert token_recall("an MRI", "MRI scan") == 0.5
    assert yes_no("Yes, there is.") == "yes" and yes_no("I think no") == "no" and yes_no("maybe") == ""
    assert closed_correct("B", "B") and closed_correct("(b) liver", "B") and not closed_correct("A. kidney", "B")
    assert closed_correct("It is a CT scan", "CT") and not closed_correct("MRI", "CT")


def test_harness_on_benchmark_forms(tmp_path: Path):
    rad = [{"qid": 1, "question": "Is this a CT?", "answer": "Yes", "answer_type": "CLOSED", "question_type": "MODALITY"},
           {"qid": 2, "question": "Where is the mass?", "answer": "right upper lobe", "answer_type": "OPEN",
            "question_type": "POS"},
           {"qid": 3, "question": "Is there a fracture?", "answer": "no", "answer_type": "CLOSED", "question_type": "PRES"},
           {"qid": 4, "question": "Is this a CT or an MRI?", "answer": "CT", "answer_type": "CLOSED",
            "question_type": "MODALITY"}]
    slake = [{"qid": 7, "question": "Which organ?", "answer": "Liver", "answer_type": "OPEN", "content_type": "Organ",
              "q_lang": "en"},
             {"qid": 8, "question": "哪个器官?", "answer": "肝", "answer_type": "OPEN", "content_type": "Organ",
              "q_lang": "zh"}]
    path_vqa = [{"id": "p1", "question": "is this tissue malignant?", "answer": "yes"},
                {"id": "p2", "question": "what is present?", "answer": "granuloma"}]
    (tmp_path / "rad.json").write_text(json.dumps(rad))
    (tmp_path / "slake.json").write_text(json.dumps(slake))
    (tmp_path / "pvqa.jsonl").write_text("\n".join(json.dumps(r) for r in path_vqa))
    preds = [{"question_id": 1, "text": "yes"}, {"question_id": 2, "text": "in the right lower lobe"},
             {"question_id": 3, "text": "yes"}, {"question_id": 4, "text": "a CT"}, {"question_id": 7, "text": "the liver"},
             {"question_id": "p1", "text": "Yes."}, {"question_id": "p2", "text": "necrosis"}]
    (tmp_path / "pred.jsonl").write_text("\n".join(json.dumps(p) for p in preds))
    p = load_predictions(tmp_path / "pred.jsonl")
    r = evaluate(load_ground_truth(tmp_path / "rad.json", "vqa_rad"), p)
    assert r["closed_accuracy"] == round(2 / 3, 4) and r["closed_n"] == 3
    assert abs(r["open_recall"] - 2 / 3) < 1e-3
    assert r["per_question_type"]["pos"]["open_recall"] == round(2 / 3, 4)
    assert r["per_question_type"]["pres"]["closed_accuracy"] == 0.0
    assert r["per_question_type"]["modality"]["closed_accuracy"] == 1.0
    s = evaluate(load_ground_truth(tmp_path / "slake.json", "slake"), p)
    assert s["open_n"] == 1 and s["open_recall"] == 1.0  # Chinese questions skipped
    v = evaluate(load_ground_truth(tmp_path / "pvqa.jsonl", "pathvqa"), p)
    assert v["closed_accuracy"] == 1.0 and v["open_recall"] == 0.0
    missing = evaluate(load_ground_truth(tmp_path / "rad.json", "vqa_rad"), {})
    assert missing["missing_predictions"] == 4 and missing["closed_accuracy"] == 0.0
    assert main(["--gt", str(tmp_path / "rad.json"), "--pred", str(tmp_path / "pred.jsonl"), "--format", "vqa_rad"]) == 0
