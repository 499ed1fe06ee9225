"""Caption-to-VQA pairs and the evaluation harness (closed by accuracy, open by token recall)."""

import json
from pathlib import Path

from medtrinity_assets.export.samples import ExportSample
from medtrinity_assets.export.vqa import qa_pairs
from medtrinity_assets.export.vqa_eval import evaluate, load_ground_truth, load_predictions, main, token_recall, yes_no


def _sample() -> ExportSample:
    return ExportSample(
        id="s1", image_bytes=b"", image_sha256="", width=64, height=64, caption="", modality="MR", organ="brain",
        rois=[{"label": "tumour", "kind": "finding", "side": "right", "size_class": "large", "texture": "heterogeneous",
               "intensity": "hyperintense", "origin": "ground_truth"},
              {"label": "ventricle", "kind": "anatomy", "side": "midline", "origin": "ground_truth"}],
    )


def test_pairs_follow_the_facts():
    pairs = qa_pairs(_sample(), other_findings=["tumour", "cyst"])
    by_q = {p.question: p.answer for p in pairs}
    assert by_q["What imaging modality was used to acquire this image?"] == "MRI"
    assert by_q["On which side of the patient is the tumour?"] == "right"
    assert by_q["How large is the tumour?"] == "large" and by_q["Is the tumour large?"] == "yes"
    assert by_q["Is the tumour heterogeneous?"] == "yes"
    assert by_q["Is there a cyst in this image?"] == "no"  # ground-truth ROIs: absence is known
    assert "Is there a ventricle in this image?" not in by_q  # anatomy is not a finding
    assert {p.answer_type for p in pairs} == {"OPEN", "CLOSED"}
    assert qa_pairs(_sample()) == qa_pairs(_sample())  # deterministic


def test_metrics():
    assert token_recall("The lesion is in the right lung", "right lung") == 1.0
    assert token_recall("left", "right lung") == 0.0
    assert token_recall("an MRI", "MRI scan") == 0.5
    assert yes_no("Yes, there is.") == "yes" and yes_no("I think no") == "no" and yes_no("maybe") == ""


def test_harness_on_benchmark_forms(tmp_path: Path):
    rad = [{"qid": 1, "question": "Is this a CT?", "answer": "Yes", "answer_type": "CLOSED", "question_type": "MODALITY"},
           {"qid": 2, "question": "Where is the mass?", "answer": "right upper lobe", "answer_type": "OPEN",
            "question_type": "POS"},
           {"qid": 3, "question": "Is there a fracture?", "answer": "no", "answer_type": "CLOSED", "question_type": "PRES"}]
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
             {"question_id": 3, "text": "yes"}, {"question_id": 7, "text": "the liver"},
             {"question_id": "p1", "text": "Yes."}, {"question_id": "p2", "text": "necrosis"}]
    (tmp_path / "pred.jsonl").write_text("\n".join(json.dumps(p) for p in preds))
    p = load_predictions(tmp_path / "pred.jsonl")
    r = evaluate(load_ground_truth(tmp_path / "rad.json", "vqa_rad"), p)
    assert r["closed_accuracy"] == 0.5 and r["closed_n"] == 2
    assert abs(r["open_recall"] - 2 / 3) < 1e-3
    assert r["per_question_type"]["pos"]["open_recall"] == round(2 / 3, 4)
    assert r["per_question_type"]["pres"]["closed_accuracy"] == 0.0
    s = evaluate(load_ground_truth(tmp_path / "slake.json", "slake"), p)
    assert s["open_n"] == 1 and s["open_recall"] == 1.0  # Chinese questions skipped
    v = evaluate(load_ground_truth(tmp_path / "pvqa.jsonl", "pathvqa"), p)
    assert v["closed_accuracy"] == 1.0 and v["open_recall"] == 0.0
    missing = evaluate(load_ground_truth(tmp_path / "rad.json", "vqa_rad"), {})
    assert missing["missing_predictions"] == 3 and missing["closed_accuracy"] == 0.0
    assert main(["--gt", str(tmp_path / "rad.json"), "--pred", str(tmp_path / "pred.jsonl"), "--format", "vqa_rad"]) == 0
