"""The grounded composer: training-grade text that agrees with the phantom's truth, never contradicts its facts,
never talks about the pipeline, interprets with knowledge, traces every clause, and is seeded."""

from __future__ import annotations

import dataclasses
import re

import pytest

from medtrinity_assets.generation.backends.grounded import CAPTION_SOURCE, GroundedBackend
from medtrinity_assets.generation.coarse_caption import coarse_caption
from medtrinity_assets.generation.prompt import build_request, load_template
from medtrinity_assets.generation.sample_facts import ImageFacts, Passage, SampleFacts
from medtrinity_assets.quality import description_metrics as M
from medtrinity_assets.quality.consistency import quoted_clauses, score_triplet
from medtrinity_assets.roi.facts import OtherLesion, Relations, RoiFacts
from medtrinity_assets.tables import ATTRIBUTES
from medtrinity_assets_tests.support.generation import ct_liver_facts, mr_brain_facts, phantom_samples

OPPOSITE = {"left": "right", "right": "left"}


def issues_of(res, facts):
    """The blocking gate's verdict on a composed triplet (the generator's guard uses the same scorer)."""
    return score_triplet(res.description, res.attributes, facts.scorer_facts(), quoted_clauses({"clauses_json": res.clauses}))


@pytest.fixture(scope="module")
def phantom():
    return phantom_samples(seed=0, indices=range(6))


def _cyst_passage(pid="p-cyst"):
    return Passage(pid, 0.8, "core", "Simple liver cyst", "A benign fluid-filled cavity.",
                   (("organ", "liver"), ("modalities", ["CT", "MR", "US"]), ("normal", False), ("aliases", ["liver cyst"]),
                    ("appearance", {"CT": "Sharply marginated round lesion of water density (0-20 HU), homogeneous."}),
                    ("differential", ["cystic metastasis", "hydatid cyst", "liver cysts"])))


def test_phantom_triplets_state_the_truth_in_millimetres(phantom):
    backend = GroundedBackend(seed=0)
    for facts, truth in phantom:
        res = backend.compose(facts)
        assert res.ok and set(res.attributes) == set(ATTRIBUTES)
        assert re.search(r"\bCT\b|computed tomography", res.attributes["modality"]) and "axial" in res.attributes["modality"].lower()
        for rid, t in truth.items():
            [where] = [c["text"] for c in res.clauses if c["field"] == "roi_location" and c["source"].startswith(f"roi:{rid}.")]
            assert f"patient's {t['side']}" in where and OPPOSITE[t["side"]] not in where, where
            assert t["name"] in where
            roi = next(r for r in facts.rois if r.roi_id == rid)
            long_mm, short_mm = M.stated_size_mm(where)
            assert abs(long_mm - roi.long_axis_mm) <= 0.51 and abs(short_mm - roi.short_axis_mm) <= 0.51, where
            look = " ".join(c["text"] for c in res.clauses if c["source"].startswith(f"roi:{rid}."))
            assert t["texture"] in look
            if t["organ"] != "lung":
                assert t["intensity"] in look, look
        assert issues_of(res, facts) == []
        assert M.pipeline_phrases(res.description) == [] and M.pipeline_phrases(" ".join(res.attributes.values())) == []


def test_a_lung_nodule_gets_an_absolute_attenuation_class_against_aerated_lung():
    nodule = RoiFacts(roi_id="n1", label="lung nodule", origin="ground_truth", side="right", region="lung",
                      long_axis_mm=7.8, short_axis_mm=7.1, intensity="hyperdense", contrast=877.0, contrast_unit="HU",
                      mean_value=27.0, surround_value=-850.0, value_unit="HU", attenuation="soft_tissue",
                      texture="homogeneous", shape="round", margin="well_defined")
    facts = SampleFacts(ImageFacts("l1", modality="CT", organ="abdomen", axis="axial", window="ct:lung(-600/1500)",
                                   slice_index=40), rois=(nodule,))
    text = GroundedBackend().compose(facts).description
    assert "soft-tissue attenuation (mean 27 HU)" in text and "denser than the surrounding aerated lung (about -850 HU)" in text
    assert "+877" not in text and "hyperdense" not in text  # the contrast against air says nothing about the nodule
    assert "lung window (level -600, width 1500 HU)" in text


def test_units_follow_the_image_kind():
    lesion = dict(roi_id="r1", label="lesion", origin="ground_truth", side="left", region="liver", texture="homogeneous",
                  shape="round", margin="well_defined", area_fraction=0.004)
    eight_bit = RoiFacts(**lesion, intensity="hypodense", contrast=-3.1, contrast_unit="z", mean_value=80.0,
                         surround_value=120.0, value_unit="grey")  # a CT shown as an 8-bit picture: no HU, no mm
    text = GroundedBackend().compose(SampleFacts(ImageFacts("e1", modality="CT", organ="abdomen"), rois=(eight_bit,))).description
    assert "HU" not in text and "mm" not in text and "contrast-to-noise ratio 3.1" in text and "0.4% of the image" in text
    mr = RoiFacts(**lesion, intensity="hyperintense", contrast=4.2, contrast_unit="z", value_unit="signal", long_axis_mm=12.0,
                  short_axis_mm=9.0)
    text = GroundedBackend().compose(SampleFacts(ImageFacts("m1", modality="MR", organ="brain"), rois=(mr,))).description
    assert "hyperintense" in text and "HU" not in text and "12 × 9 mm" in text
    us = RoiFacts(**lesion, intensity="hypoechoic", contrast=-2.5, contrast_unit="z", value_unit="grey")
    text = GroundedBackend().compose(SampleFacts(ImageFacts("u1", modality="US"), rois=(us,))).description
    assert "hypoechoic" in text and "HU" not in text
    xr = RoiFacts(**lesion, intensity="brighter", contrast=2.0, contrast_unit="z", value_unit="grey")
    text = GroundedBackend().compose(SampleFacts(ImageFacts("x1", modality="CR", organ="chest"), rois=(xr,))).description
    assert "more radiopaque" in text


def test_knowledge_becomes_a_hedged_interpretation_never_a_more_specific_diagnosis():
    base = ct_liver_facts()
    cyst = dataclasses.replace(base.rois[0], label="liver cyst")
    facts = dataclasses.replace(base, rois=(cyst, base.rois[1]), passages=(_cyst_passage(),))
    res = GroundedBackend(seed=0).compose(facts)
    [k] = [c for c in res.clauses if c["source"].startswith("passage:")]
    assert k["source"] == "passage:core:p-cyst"
    assert re.search(r"\b(fits?|in keeping with|compatible with)\b", k["text"])
    assert "fluid attenuation (mean 0 HU)" in k["text"].replace("Fluid", "fluid") and "a liver cyst" in k["text"]
    # the more specific title is a possibility, never what the finding is; the label's own plural is not repeated
    assert re.search(r"(possibilities|differential) includes? simple liver cyst", k["text"]) and "liver cysts" not in k["text"]
    assert M.is_interpretive(k["text"], cyst, [facts.passages[0].text, "Sharply marginated round lesion of water density"])
    assert issues_of(res, facts) == []


def test_a_generic_label_gets_a_differential_only():
    base = ct_liver_facts()
    lesion = dataclasses.replace(base.rois[0], label="lesion")
    facts = dataclasses.replace(base, rois=(lesion,), passages=(_cyst_passage(),))
    [k] = [c["text"] for c in GroundedBackend().compose(facts).clauses if c["source"].startswith("passage:")]
    assert re.search(r"differential includes simple liver cyst|possibility of simple liver cyst|may represent simple liver cyst", k), k
    assert "fit a" not in k and "fits a" not in k


def test_knowledge_about_another_organ_finding_or_modality_is_not_used():
    base = ct_liver_facts()
    kidney = Passage("p-kid", 0.9, "core", "Simple renal cyst", "", (("organ", "kidney"), ("modalities", ["CT"]),
                     ("appearance", {"CT": "Water density, homogeneous."}), ("differential", [])))
    mr_only = dataclasses.replace(_cyst_passage("p-mr"), meta=tuple((k, v if k != "modalities" else ["MR"]) for k, v in _cyst_passage().meta))
    hcc = Passage("p-hcc", 0.9, "core", "Hepatocellular carcinoma", "", (("organ", "liver"), ("modalities", ["CT"]),
                  ("aliases", ["HCC"]), ("appearance", {"CT": "Hypodense, heterogeneous."}), ("differential", [])))
    cyst = dataclasses.replace(base.rois[0], label="liver cyst")
    facts = dataclasses.replace(base, rois=(cyst,), passages=(kidney, mr_only, hcc))
    res = GroundedBackend().compose(facts)
    assert not any(c["source"].startswith("passage:") for c in res.clauses)


def test_unknown_side_spacing_and_organ_give_a_shorter_true_text():
    facts = SampleFacts(ImageFacts("u1", source="x", modality="OT"),
                        rois=(RoiFacts(roi_id="r1", label="lesion", size_class="small", area_fraction=0.01, shape="oval"),))
    for seed in range(10):
        res = GroundedBackend(seed=seed).compose(facts)
        assert not re.search(r"\b(left|right|bilateral)\b", res.description, re.I)
        assert "mm" not in res.description and "HU" not in res.description
        assert issues_of(res, facts) == [] and M.pipeline_phrases(res.description) == []


def test_every_clause_is_traceable_and_the_paragraph_is_their_join():
    res = GroundedBackend(seed=0).compose(ct_liver_facts())
    assert all(c["field"] in ATTRIBUTES and c["source"] for c in res.clauses)
    assert res.description == " ".join(c["text"] for c in res.clauses)
    assert {"image", "roi:r1"} <= {c["source"].split(".")[0] for c in res.clauses}


def test_seeded_variation_is_deterministic():
    facts = [dataclasses.replace(ct_liver_facts(), image=dataclasses.replace(ct_liver_facts().image, sample_id=f"s{i}")) for i in range(20)]
    a = [GroundedBackend(seed=0).compose(f).description for f in facts]
    assert a == [GroundedBackend(seed=0).compose(f).description for f in facts]
    assert len(set(a)) >= 5 and a != [GroundedBackend(seed=1).compose(f).description for f in facts]


def test_an_image_without_findings_gets_a_real_global_description():
    liver = RoiFacts(roi_id="a1", label="liver", kind="anatomy", origin="ground_truth", side="right", area_fraction=0.2,
                     long_axis_mm=151.0, short_axis_mm=118.0)
    spleen = RoiFacts(roi_id="a2", label="spleen", kind="anatomy", origin="ground_truth", side="left", area_fraction=0.05,
                      long_axis_mm=92.0, short_axis_mm=51.0)
    image = ImageFacts("n1", source="phantom_ct", modality="CT", organ="abdomen", labels=("liver_cyst",), axis="axial",
                       window="ct:abdomen(50/400)", slice_index=12, body_region="abdomen", visible_organs=("liver", "spleen"))
    res = GroundedBackend().compose(SampleFacts(image, rois=(liver, spleen)))
    text = res.description
    assert "upper abdomen" in text and "liver (15.1 × 11.8 cm)" in text and "spleen (9.2 × 5.1 cm)" in text
    assert "no focal lesion in the liver at this level" in text  # ground-truth liver mask, the source annotates liver lesions
    assert "spleen at this level" not in text  # nothing says the source would have marked a splenic lesion
    assert M.pipeline_phrases(text) == [] and "cyst" not in text
    expert = SampleFacts(image, rois=(dataclasses.replace(liver, origin="expert:ct_anatomy@1"),))
    assert "no focal lesion" not in GroundedBackend().compose(expert).description  # a model's silence proves nothing


def test_the_region_comes_from_the_slice_and_a_disagreement_is_kept():
    from medtrinity_assets.generation.inputs import image_facts as to_image_facts

    lung = [RoiFacts(roi_id=f"l{i}", label="lung", kind="anatomy", origin="ground_truth", side=s, area_fraction=0.1)
            for i, s in enumerate(("left", "right"))]
    row = {"sample_id": "c1", "modality": "CT", "organ": "abdomen", "axis": "axial", "slice_index": 44}
    img = to_image_facts(row, None, lung)
    assert (img.body_region, img.body_region_origin, img.agrees_with_metadata) == ("chest", "ground_truth", False)
    text = GroundedBackend().compose(SampleFacts(img, rois=tuple(lung))).description
    assert "of the chest" in text and "abdomen" not in text
    # the ROI stage's own image_facts row wins over the anatomy guess
    expert_row = {"sample_id": "c1", "status": "ok", "body_region": "chest", "body_region_detail": "lower chest",
                  "body_region_origin": "expert:ct_anatomy@1", "agrees_with_metadata": False, "organs": ["lung", "bone"],
                  "measurements_json": '{"cardiothoracic_ratio": 0.47}'}
    img = to_image_facts(row, expert_row, lung)
    assert img.body_region_detail == "lower chest" and img.measurement("cardiothoracic_ratio") == 0.47
    text = GroundedBackend().compose(SampleFacts(img, rois=tuple(lung))).description
    assert "lower chest" in text and "cardiothoracic ratio" in text and "0.47" in text
    no_anatomy = to_image_facts(row, None, ())
    assert (no_anatomy.body_region, no_anatomy.body_region_origin, no_anatomy.agrees_with_metadata) == ("abdomen", "metadata", None)


def test_xray_view_laterality_and_mr_weighting_come_from_the_header():
    hand = ImageFacts("x1", modality="CR", organ="extremity", acquisition=(("ViewPosition", "AP"), ("Laterality", "R"),
                                                                           ("body_part", "extremity")))
    res = GroundedBackend().compose(SampleFacts(hand))
    assert res.description.startswith("An anteroposterior") and "right extremity" in res.description
    assert issues_of(res, SampleFacts(hand)) == []  # the image's own laterality is a fact, not an invented side
    mr = ImageFacts("m1", modality="MR", organ="head", axis="axial", acquisition=(
        ("RepetitionTime", 350.0), ("EchoTime", 27.0), ("MagneticFieldStrength", 1.5), ("SliceThickness", 6.0)))
    text = GroundedBackend().compose(SampleFacts(mr)).description
    assert "T1-weighted" in text and "acquired at 1.5 T with 6 mm slices" in text


def test_a_source_caption_is_used_as_borrowed_text_and_checked():
    image = ImageFacts("c1", modality="HISTOLOGY", organ="colon",
                       caption_in="Tissue section with brown chromogen marking the immunoreactive cells lining the glands")
    res = GroundedBackend().compose(SampleFacts(image))
    [clause] = [c for c in res.clauses if c["source"] == CAPTION_SOURCE]
    assert clause["text"].endswith("glands.") and clause["text"] in quoted_clauses({"clauses_json": res.clauses})
    wrong = dataclasses.replace(image, caption_in="Axial MRI of the brain.")  # contradicts the facts: not used
    assert "MRI" not in GroundedBackend().compose(SampleFacts(wrong)).description


def test_distance_between_two_findings_is_stated_once():
    a = RoiFacts(roi_id="aaaa1111bbbb2222", label="liver tumour", side="right", region="liver", area_fraction=0.02,
                 relations=Relations(inside=("liver",), other_lesions=(OtherLesion("cccc3333dddd4444", "liver cyst", "right", 39.3),)))
    b = RoiFacts(roi_id="cccc3333dddd4444", label="liver cyst", side="right", region="liver", area_fraction=0.01,
                 relations=Relations(other_lesions=(OtherLesion("aaaa1111bbbb2222", "liver tumour", "right", 39.3),
                                                    OtherLesion("eeee5555ffff6666", "liver cyst", "right", 12.0))))
    text = GroundedBackend().compose(SampleFacts(ImageFacts("d1", modality="CT", organ="abdomen"), rois=(a, b))).description
    assert text.count("39 mm") == 1 and "12 mm" not in text and "two focal findings" in text


def test_two_findings_of_one_name_are_told_apart():
    lesion = dict(label="lesion", origin="expert:lesion_seg@x", side="right", region="liver", intensity="hypodense",
                  contrast=-30.0, contrast_unit="HU")
    first = RoiFacts(roi_id="a", area_fraction=0.006, relations=Relations(other_lesions=(OtherLesion("b", "lesion", "right", 18.0),)), **lesion)
    second = RoiFacts(roi_id="b", area_fraction=0.004, **lesion)
    text = GroundedBackend(seed=0).compose(dataclasses.replace(ct_liver_facts(), rois=(first, second))).description
    assert re.search(r"18 mm from the second lesion", text), text


def test_coarse_caption_and_prompt_carry_the_facts_without_pipeline_words():
    facts = mr_brain_facts()
    cap = coarse_caption(facts.image)
    assert cap.sentence == "A magnetic resonance (MR) image of the brain showing glioma."
    assert cap.modality == "MR" and cap.organ == "brain" and cap.diseases == ("glioma",) and cap.source == "brain_mr"
    sliced = coarse_caption(dataclasses.replace(facts.image, slice_index=7, axis="axial"))
    assert sliced.sentence.endswith("the scanned volume contains glioma.")  # a volume's label is not claimed for the slice
    tpl = load_template()
    assert tpl.name == "description_v2"
    req = build_request(facts, tpl)
    for fact in ("patient side: right", "size: large", "intensity: hyperintense", "margin: ill-defined", "shape: irregular"):
        assert fact in req.user
    assert '"required"' in req.user and req.overlay_png is None
    assert "boxes" in req.system and "regions of interest" in req.system.lower()  # told what never to say


def test_overlay_is_drawn_in_memory_on_a_copy():
    import io

    import numpy as np
    from PIL import Image

    from medtrinity_assets_tests.support.generation import tiny_png

    png = tiny_png(64, 48)
    req = build_request(ct_liver_facts(), image_png=png)
    assert req.image_png == png
    assert "box x0=0.550 y0=0.300 x1=0.650 y1=0.400" in req.user  # the same box as normalised coordinates
    with Image.open(io.BytesIO(req.overlay_png)) as ov, Image.open(io.BytesIO(png)) as im:
        diff = np.abs(np.asarray(ov.convert("RGB"), dtype=int) - np.asarray(im.convert("RGB"), dtype=int)).sum(axis=2) > 0
    ys, xs = np.nonzero(diff)
    assert 0.5 * 64 <= np.median(xs) <= 0.75 * 64 and 0.2 * 48 <= np.median(ys) <= 0.5 * 48


def test_a_passage_describing_the_opposite_of_a_measurement_is_not_used():
    """A soft-tissue, hyperdense liver lesion is not interpreted with a water-density cyst passage (whose
    'no enhancement' is a negation, not evidence)."""
    base = ct_liver_facts()
    dense = dataclasses.replace(base.rois[0], label="lesion", intensity="hyperdense", contrast=30.0, mean_value=90.0,
                                surround_value=60.0, attenuation="soft_tissue")
    cyst = dataclasses.replace(_cyst_passage(), meta=tuple(
        (k, {"CT": "Round lesion of water density (0-20 HU), homogeneous, with no enhancement."} if k == "appearance" else v)
        for k, v in _cyst_passage().meta))
    res = GroundedBackend().compose(dataclasses.replace(base, rois=(dense,), passages=(cyst,)))
    assert not any(c["source"].startswith("passage:") for c in res.clauses)


@pytest.mark.parametrize("modality,organ,label,shape,expected", [
    ("FUNDUS", "eye", "field of view", "round", r"circular imaged field fills about 62% of the frame|62% of the frame is taken up by the circular imaged field"),
    ("US", "", "field of view", "irregular", r"imaged field fills about 62% of the frame|62% of the frame is taken up by the imaged field"),
    ("HISTOLOGY", "colon", "tissue", "irregular", r"Tissue fills about 62% of the field|62% of the field is covered by tissue"),
])
def test_a_frame_roi_is_measured_not_listed_as_anatomy(modality, organ, label, shape, expected):
    frame = RoiFacts(roi_id="f1", label=label, kind="anatomy", origin="expert:field_of_view@1.0", area_fraction=0.62, shape=shape)
    facts = SampleFacts(ImageFacts("fov", source="x", modality=modality, organ=organ), rois=(frame,))
    for seed in range(6):
        res = GroundedBackend(seed=seed).compose(facts)
        assert re.search(expected, res.description), res.description
        assert not re.search(r"(including|showing|shows) (the )?(field of view|tissue)\b", res.description), res.description
        assert issues_of(res, facts) == [] and M.pipeline_phrases(res.description) == []


def test_a_brighter_finding_is_not_interpreted_by_a_water_density_entity():
    # a hyperdense liver lesion on an 8-bit CT picture: a simple cyst (water density, no enhancement) is no
    # possibility for it, whatever its margin and shape share with one
    lesion = RoiFacts(roi_id="r1", label="hyperdense liver lesion", origin="ground_truth", region="liver",
                      area_fraction=0.004, intensity="hyperdense", contrast=2.6, value_unit="grey",
                      texture="heterogeneous", shape="round", margin="well_defined")
    cyst = Passage("p-cyst", 0.8, "core", "Simple liver cyst", "A benign fluid-filled cavity.",
                   (("organ", "liver"), ("modalities", ["CT", "MR", "US"]), ("normal", False), ("aliases", ["liver cyst"]),
                    ("appearance", {"CT": "Sharply marginated round lesion of water density (0-20 HU), homogeneous, "
                                          "with an imperceptible wall and no enhancement."}),
                    ("differential", ["cystic metastasis", "hydatid cyst"])))
    facts = SampleFacts(ImageFacts("h1", source="x", modality="CT", organ="abdomen"), rois=(lesion,), passages=(cyst,))
    for seed in range(6):
        res = GroundedBackend(seed=seed).compose(facts)
        assert "cyst" not in res.description, res.description
        assert "hyperdense liver lesion is hyperdense" not in res.description.lower()


def test_a_caption_naming_the_modality_replaces_the_bare_overview():
    caption = "Axial contrast-enhanced CT of the upper abdomen showing a 16 mm hypodense spleen lesion on the patient's left."
    image = ImageFacts("cap1", modality="CT", organ="abdomen", body_region="abdomen", caption_in=caption)
    for seed in range(4):
        res = GroundedBackend(seed=seed).compose(SampleFacts(image))
        assert res.description == caption and [c["source"] for c in res.clauses] == [CAPTION_SOURCE]
    # a caption the gate refuses (another modality) leaves the overview in place: never an empty text
    wrong = dataclasses.replace(image, caption_in="Axial MRI of the brain.")
    assert GroundedBackend().compose(SampleFacts(wrong)).description.startswith(("A CT", "A computed", "An abdominal"))
    # a caption that names no modality keeps the overview before it
    plain = dataclasses.replace(image, caption_in="A hypodense spleen lesion on the patient's left.")
    res = GroundedBackend().compose(SampleFacts(plain))
    assert res.clauses[0]["field"] == "modality" and res.description.endswith("patient's left.")
