"""The text–fact consistency scorer: contradictions are caught, faithful descriptions pass."""

from __future__ import annotations

from medtrinity_assets.quality.consistency import Facts, facts_from_row, score_rows, score_triplet
from medtrinity_assets.roi.facts import RoiFacts
from medtrinity_assets_tests.support.quality import GOOD_ATTRIBUTES, GOOD_DESCRIPTION, roi_row

FACTS = Facts(
    modality="CT", organ="abdomen", labels=("tumour",),
    rois=(RoiFacts(label="tumour", side="left", size_class="small", intensity="hypodense", region="kidney"),
          RoiFacts(label="liver", side="right", size_class="large", intensity="isodense", region="liver", kind="anatomy")),
)


def kinds(issues):
    return sorted({i.kind for i in issues})


def test_faithful_description_has_no_issue():
    text = ("Axial CT of the abdomen. A small hypodense tumour sits in the left kidney; the liver, on the right, "
            "is isodense. A single tumour is present. No fracture is seen.")
    assert score_triplet(text, GOOD_ATTRIBUTES, FACTS) == []


def test_wrong_side_is_caught():
    text = GOOD_DESCRIPTION.replace("left kidney", "right kidney")
    issues = score_triplet(text, None, FACTS)
    assert kinds(issues) == ["side"]
    assert issues[0].found == "right" and issues[0].expected == "left"


def test_wrong_side_in_an_attribute_is_caught():
    attrs = dict(GOOD_ATTRIBUTES, roi_location="right kidney")
    issues = score_triplet(GOOD_DESCRIPTION, attrs, FACTS)
    assert [(i.kind, i.where) for i in issues] == [("side", "attributes.roi_location")]


def test_wrong_modality_is_caught():
    issues = score_triplet(GOOD_DESCRIPTION.replace("Axial CT image", "Axial MRI image"), None, FACTS)
    assert "modality" in kinds(issues)


def test_breast_mri_described_as_brain_is_caught():
    facts = Facts(modality="MR", organ="breast")
    issues = score_triplet("T2-weighted MRI of the brain showing the cerebral hemispheres.", None, facts)
    assert "organ" in kinds(issues) and "modality" not in kinds(issues)


def test_size_intensity_count_and_absent_things():
    text = "A large hyperdense tumour in the left kidney. Three lesions are seen. The spleen is normal."
    assert kinds(score_triplet(text, None, FACTS)) == ["absent_organ", "intensity", "roi_count", "size"]
    normal = Facts(modality="CT", organ="abdomen")
    assert kinds(score_triplet("CT of the abdomen with a mass.", None, normal)) == ["absent_finding"]
    assert score_triplet("CT of the abdomen without any mass.", None, normal) == []


def test_side_without_known_orientation_is_an_invented_location():
    facts = Facts(modality="CR", organ="chest", rois=(RoiFacts(label="nodule"),))
    issues = score_triplet("Chest radiograph with a nodule in the left lung.", None, facts)
    assert kinds(issues) == ["side"] and issues[0].expected == "unknown"
    # the image's own left/right is display, not anatomy
    assert score_triplet("Chest radiograph with a nodule on the image's left.", None, facts) == []


def test_rows_in_table_shape_and_shard_rate():
    roi = roi_row("s1", "src")
    good = {"sample_id": "s1", "modality": "CT", "organ": "abdomen", "labels": ["tumour"], "status": "ok",
            "description": GOOD_DESCRIPTION, "attributes": GOOD_ATTRIBUTES}
    bad = dict(good, sample_id="s2", description=GOOD_DESCRIPTION.replace("left", "right").replace("CT", "MRI"))
    failed = dict(good, sample_id="s3", status="failed", description=None)
    facts = facts_from_row(good, [roi])
    claims = facts.claims[0]
    assert claims.side == "left" and claims.organ == "kidney" and claims.intensity == "hypo"
    score = score_rows([good, bad, failed], {"s1": [roi], "s2": [roi]})
    assert score.scored == 2 and score.flagged == 1 and score.contradiction_rate == 0.5
    assert {i["kind"] for i in score.per_triplet["s2"]} == {"side", "modality"}
    assert score.by_kind["side"] == 1


def test_quoted_knowledge_is_not_read_as_a_claim_about_the_image():
    quote = "Most small nodules are benign; a focal lesion darker than the liver is hypodense."
    text = "Axial CT of the abdomen. A large hyperdense tumour lies in the left kidney. " + quote
    facts = Facts(modality="CT", organ="abdomen",
                  rois=(RoiFacts(label="tumour", side="left", size_class="large", intensity="hyperdense", region="kidney"),
                        RoiFacts(label="liver", side="right", size_class="large", intensity="hyperdense", kind="anatomy")))
    assert kinds(score_triplet(text, None, facts)) == ["intensity", "size"]
    assert score_triplet(text, None, facts, quoted=[quote]) == []
    # quoted knowledge may name other organs of the region, not another region
    other = "Renal cancer and colon metastases may calcify."
    assert score_triplet(text + " " + other, None, facts, quoted=[quote, other]) == []
    brain = "Gliomas of the brain are infiltrative."
    assert kinds(score_triplet(text + " " + brain, None, facts, quoted=[quote, brain])) == ["organ"]
    row = {"sample_id": "x", "modality": "CT", "organ": "abdomen", "status": "ok", "description": text,
           "clauses_json": f'[{{"field": "texture", "text": "{quote}", "source": "passage:core:p1"}}]'}
    assert score_rows([row], {"x": [{"label": "tumour", "kind": "finding", "side": "left", "size_class": "large",
                                     "intensity": "hyperdense", "region": "kidney"},
                                    {"label": "liver", "kind": "anatomy", "side": "right", "size_class": "large",
                                     "intensity": "hyperdense"}]}).flagged == 0


def test_corrupted_copy_is_caught():
    from medtrinity_assets.quality.corrupt import corrupt_rows

    roi = roi_row("s", "src")
    rows = [{"sample_id": f"s{i}", "modality": "CT", "organ": "abdomen", "status": "ok",
             "description": GOOD_DESCRIPTION, "attributes": GOOD_ATTRIBUTES} for i in range(40)]
    rois = {r["sample_id"]: [roi] for r in rows}
    assert score_rows(rows, rois).contradiction_rate == 0.0
    bad, changed = corrupt_rows(rows, share=0.5)
    assert corrupt_rows(rows, share=0.5) == (bad, changed)  # deterministic
    n_changed = sum(changed.values())
    assert 10 <= n_changed <= 30 and all(changed.values())
    score = score_rows(bad, rois)
    assert score.flagged == n_changed and set(score.per_triplet) == {
        r["sample_id"] for r, o in zip(bad, rows) if r["description"] != o["description"]}


def test_a_quoted_source_caption_ending_in_a_closing_quote_is_not_read_as_a_claim():
    facts = Facts(modality="CT", organ="abdomen")  # no ROI: no side is known
    caption = '"A hypodense lesion on the patient\'s left."'
    description = f"This is a CT image. {caption} The image is axial."
    assert kinds(score_triplet(description, None, facts, quoted=[caption])) == []
    # the same words as the generator's own claim are an invented location
    own = "This is a CT image. A hypodense lesion lies on the patient's left. The image is axial."
    assert "side" in kinds(score_triplet(own, None, facts))


def test_a_pronoun_speaks_of_the_finding_just_named():
    facts = Facts(modality="CT", organ="abdomen", rois=(
        RoiFacts(label="liver cyst", side="right", region="liver", intensity="hypodense", size_class="medium"),
        RoiFacts(label="liver", kind="anatomy", side="right", intensity="hyperdense", size_class="very_large")))
    named = "A 12 × 10 mm liver cyst lies in the liver on the patient's right."
    assert score_triplet(f"{named} It is hypodense relative to the liver.", None, facts) == []
    assert kinds(score_triplet(f"{named} It is hyperdense relative to the liver.", None, facts)) == ["intensity"]


def test_plural_organ_names_and_image_laterality():
    lungs = Facts(modality="CT", organ="chest", rois=(RoiFacts(label="lung", kind="anatomy", side="right"),
                                                      RoiFacts(label="lung", kind="anatomy", side="left")))
    assert score_triplet("Axial CT showing both lungs (right 7.6 × 4.8 cm, left 7.5 × 4.7 cm).", None, lungs) == []
    hand = Facts(modality="CR", organ="extremity")
    assert kinds(score_triplet("A radiograph of the right hand.", None, hand)) == ["side"]
    assert score_triplet("A radiograph of the right hand.", None, Facts(modality="CR", organ="extremity", laterality="right")) == []


def test_pipeline_language_is_an_issue_of_its_own():
    text = "Axial CT of the abdomen. No region of interest is marked. The organ is not recorded in the metadata."
    issues = score_triplet(text, None, Facts(modality="CT", organ="abdomen"))
    assert kinds(issues) == ["pipeline_language"]
    assert {i.found for i in issues} == {"region of interest", "marked", "not recorded", "metadata"}
    assert score_triplet("Axial CT with markedly dilated bowel loops.", None, Facts(modality="CT", organ="abdomen")) == []


def test_a_part_of_an_organ_in_the_facts_is_not_an_absent_organ():
    # a fundus photograph's facts give the eye (the modality implies it) and a field-of-view ROI
    facts = Facts(modality="FUNDUS", organ="eye", rois=(RoiFacts(label="field of view", kind="anatomy", region="eye"),))
    assert score_triplet("A colour fundus photograph of the retina.", None, facts) == []
    # an organ the facts do not hold is still absent
    assert kinds(score_triplet("A colour fundus photograph of the retina and the liver.", None, facts)) in (["absent_organ"], ["organ"])
