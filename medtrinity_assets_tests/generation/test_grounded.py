"""The grounded composer: agrees with the phantom's truth, never contradicts its facts, traceable, seeded."""

from __future__ import annotations

import dataclasses
import re

import pytest

from medtrinity_assets.generation.backends.grounded import GroundedBackend
from medtrinity_assets.generation.coarse_caption import coarse_caption
from medtrinity_assets.generation.prompt import build_request, load_template
from medtrinity_assets.generation.sample_facts import ImageFacts, Passage, SampleFacts
from medtrinity_assets.quality.consistency import score_triplet
from medtrinity_assets.roi.facts import OtherLesion, Relations, RoiFacts
from medtrinity_assets.tables import ATTRIBUTES
from medtrinity_assets_tests.support.generation import ct_liver_facts, mr_brain_facts, phantom_samples

OPPOSITE = {"left": "right", "right": "left"}


def check_against_facts(text, facts):
    """The gate's verdict on a text about these facts (the generator's guard uses the same scorer)."""
    return score_triplet(text, None, facts.scorer_facts())


@pytest.fixture(scope="module")
def phantom():
    return phantom_samples(seed=0, indices=range(6))


def test_phantom_triplets_agree_with_ground_truth(phantom):
    backend = GroundedBackend(seed=0)
    assert len(phantom) >= 8
    for facts, truth in phantom:
        res = backend.compose(facts)
        assert res.ok and set(res.attributes) == set(ATTRIBUTES)
        a = res.attributes
        assert re.search(r"\bCT\b|computed tomography", a["modality"]) and "axial" in a["modality"]
        assert "abdomen" in a["organ"]
        sides = {t["side"] for t in truth.values()}
        for rid, t in truth.items():
            # the clause about this ROI names its truth side and size class, and its label
            [clause] = [c["text"] for c in res.clauses if c["field"] == "roi_location" and c["source"].startswith(f"roi:{rid}.")]
            assert f"patient's {t['side']}" in clause, clause
            assert OPPOSITE[t["side"]] not in clause
            size_word = {"medium": "medium-sized"}.get(t["size_class"], t["size_class"])
            assert re.search(rf"\b{size_word}\b", clause), clause
            assert t["name"] in clause
            [tex] = [c["text"] for c in res.clauses if c["field"] == "texture" and c["source"].startswith(f"roi:{rid}.")]
            assert t["intensity"] in tex and t["texture"] in tex
        if len(sides) == 1:
            assert OPPOSITE[sides.pop()] not in res.description
        assert check_against_facts(res.description, facts) == []


def test_quality_scorer_finds_no_contradiction(phantom):
    """Cross-check with the quality stage's independent scorer, reading the triplet as stored."""
    from medtrinity_assets.generation.run import triplet_row
    from medtrinity_assets.quality import consistency

    backend = GroundedBackend(seed=3)
    for facts, _truth in phantom:
        res = backend.compose(facts)
        row = triplet_row(facts, {}, res, {"backend": "grounded", "model": "m", "version": "v"}, "gid", "sha", "s00")
        issues = consistency.score_triplet(row["description"], row["attributes"], consistency.facts_from_row(row))
        assert issues == [], (row["description"], issues)


def test_every_clause_is_traceable_and_paragraph_is_their_join():
    res = GroundedBackend(seed=0).compose(ct_liver_facts())
    assert all(c["field"] in ATTRIBUTES and c["source"] for c in res.clauses)
    assert res.description == " ".join(c["text"] for c in res.clauses)
    sources = {c["source"].split(".")[0] for c in res.clauses}
    assert {"image", "roi:r1"} <= sources
    assert any(c["source"] == "passage:core:core-liver-1" for c in res.clauses)  # knowledge clause, attributed
    for f in ATTRIBUTES:
        assert res.attributes[f] == " ".join(c["text"] for c in res.clauses if c["field"] == f)


def test_knowledge_sentences_that_contradict_are_not_borrowed():
    facts = ct_liver_facts()
    # the passage's hyperdense sentence (contradicts the measured 'hypodense') must not be used
    res = GroundedBackend(seed=0).compose(facts)
    assert "hyperdense" not in res.description
    bad = dataclasses.replace(facts, passages=(Passage("p", 0.9, "core", "Glioma", "On MRI, gliomas of the brain appear hyperintense on T2. In the right hemisphere they are common."),))
    res = GroundedBackend(seed=0).compose(bad)
    assert "MRI" not in res.description and "brain" not in res.description and "right" not in res.description


def test_unknown_side_and_organ_produce_no_side_or_organ_words():
    facts = SampleFacts(ImageFacts("u1", source="x", modality="OT"),
                        rois=(RoiFacts(roi_id="r1", label="lesion", size_class="small", area_fraction=0.01, shape="oval"),))
    for seed in range(10):
        text = GroundedBackend(seed=seed).compose(facts).description
        assert not re.search(r"\b(left|right|bilateral)\b", text, re.I)
        assert check_against_facts(text, facts) == []


def test_seeded_variation_is_deterministic():
    facts = [dataclasses.replace(ct_liver_facts(), image=dataclasses.replace(ct_liver_facts().image, sample_id=f"s{i}")) for i in range(20)]
    a = [GroundedBackend(seed=0).compose(f).description for f in facts]
    b = [GroundedBackend(seed=0).compose(f).description for f in facts]
    c = [GroundedBackend(seed=1).compose(f).description for f in facts]
    assert a == b
    assert len(set(a)) >= 5  # phrasing varies across samples
    assert a != c


def test_no_rois_stays_at_image_level():
    facts = SampleFacts(ImageFacts("f1", source="skimage_folder", modality="FUNDUS", labels=("normal",)))
    res = GroundedBackend().compose(facts)
    assert "No region of interest is marked" in res.attributes["roi_location"]
    assert "fundus" in res.attributes["modality"].lower()
    assert "normal" not in res.description.lower()  # no finding is claimed either way


def test_coarse_caption_and_prompt_carry_the_facts():
    facts = mr_brain_facts()
    cap = coarse_caption(facts.image)
    assert cap.sentence == "A magnetic resonance (MR) image of the brain labelled glioma, from source 'brain_mr'."
    assert cap.modality == "MR" and cap.organ == "brain" and cap.diseases == ("glioma",)
    tpl = load_template()
    req = build_request(facts, tpl)
    assert req.prompt_sha256 == tpl.sha256 and len(tpl.sha256) == 64
    for fact in ("patient side: right", "size: large", "intensity: hyperintense", "margin: ill-defined", "shape: irregular", cap.sentence):
        assert fact in req.user
    assert '"required"' in req.user  # the answer schema travels with the prompt
    assert req.overlay_png is None  # no image given, no overlay


def test_knowledge_about_another_organ_or_finding_is_not_borrowed():
    facts = SampleFacts(
        ImageFacts("k1", source="phantom_ct", modality="CT", organ="abdomen", labels=("liver_cyst", "kidney_cyst")),
        rois=(RoiFacts(roi_id="r1", label="kidney cyst", side="right", region="kidney", size_class="small", intensity="hypodense"),),
        passages=(Passage("p1", 0.9, "core", "Simple liver cyst", "On CT: Sharply marginated round lesion of water density, homogeneous."),
                  Passage("p2", 0.8, "core", "Renal cyst", "On CT: Thin-walled lesion near water density, homogeneous and non-enhancing.")),
    )
    res = GroundedBackend().compose(facts)
    [k] = [c for c in res.clauses if c["source"].startswith("passage:")]
    assert k["source"] == "passage:core:p2" and "On CT, thin-walled lesion" in k["text"]  # corpus section style tidied
    unlabelled = SampleFacts(ImageFacts("k2", source="brain_mr", modality="MR", organ="brain"),
                             passages=(Passage("p3", 0.9, "core", "Normal brain MRI", "On MR: white matter is brighter than grey matter on T1."),))
    assert not any(c["source"].startswith("passage:") for c in GroundedBackend().compose(unlabelled).clauses)


def test_distance_between_two_findings_is_stated_once():
    a = RoiFacts(roi_id="aaaa1111bbbb2222", label="liver tumour", side="right", region="liver", area_fraction=0.02,
                 relations=Relations(inside=("liver",), other_lesions=(OtherLesion("cccc3333dddd4444", "liver cyst", "right", 39.3),)))
    b = RoiFacts(roi_id="cccc3333dddd4444", label="liver cyst", side="right", region="liver", area_fraction=0.01,
                 relations=Relations(other_lesions=(OtherLesion("aaaa1111bbbb2222", "liver tumour", "right", 39.3),
                                                    OtherLesion("eeee5555ffff6666", "liver cyst", "right", 12.0))))  # unknown id: skipped
    res = GroundedBackend().compose(SampleFacts(ImageFacts("d1", modality="CT", organ="abdomen"), rois=(a, b)))
    rel = res.attributes["relations"]
    assert rel.count("39 mm") == 1 and "liver cyst" in rel and "eeee" not in rel and "12 mm" not in rel


def test_slice_without_findings_borrows_no_finding_knowledge():
    facts = SampleFacts(
        ImageFacts("n1", source="phantom_ct", modality="CT", organ="abdomen", labels=("liver_cyst",)),  # the volume's label
        rois=(RoiFacts(roi_id="a1", label="liver", kind="anatomy", area_fraction=0.1),),
        passages=(Passage("p1", 0.9, "core", "Simple liver cyst", "On CT: Sharply marginated round lesion of water density."),),
    )
    res = GroundedBackend().compose(facts)
    assert "cyst" not in res.description.lower()
    fundus = SampleFacts(ImageFacts("f2", source="skimage_folder", modality="FUNDUS", organ="eye", labels=("normal fundus",)),
                         passages=(Passage("p2", 0.9, "core", "Normal retina (fundus photograph)", "On FUNDUS: Orange-red background with a pink optic disc."),))
    assert "On fundus photographs, orange-red background" in GroundedBackend().compose(fundus).description


def test_overlay_is_drawn_in_memory_on_a_copy():
    import io

    import numpy as np
    from PIL import Image

    from medtrinity_assets_tests.support.generation import tiny_png

    png = tiny_png(64, 48)
    req = build_request(ct_liver_facts(), image_png=png)
    assert req.image_png == png  # the dataset image is sent as stored
    with Image.open(io.BytesIO(req.overlay_png)) as ov, Image.open(io.BytesIO(png)) as im:
        assert ov.size == im.size
        diff = np.abs(np.asarray(ov.convert("RGB"), dtype=int) - np.asarray(im.convert("RGB"), dtype=int)).sum(axis=2) > 0
    ys, xs = np.nonzero(diff)
    # the drawn box sits where the finding's normalised bbox (0.55..0.65 x 0.30..0.40) says
    assert 0.5 * 64 <= np.median(xs) <= 0.75 * 64 and 0.2 * 48 <= np.median(ys) <= 0.5 * 48


def test_relation_between_two_findings_of_one_name_says_which():
    base = ct_liver_facts()
    lesion = dict(label="lesion", origin="expert:lesion_seg@x", side="right", region="liver", size_class="medium",
                  intensity="hypodense", area_fraction=0.006)
    first = RoiFacts(roi_id="a", relations=Relations(other_lesions=(OtherLesion("b", "lesion", "right", 18.0),)), **lesion)
    second = RoiFacts(roi_id="b", **{**lesion, "area_fraction": 0.004})
    facts = dataclasses.replace(base, rois=(first, second))
    text = GroundedBackend(seed=0).compose(facts).description
    assert "18 mm" in text
    assert re.search(r"18 mm (away )?from the second lesion", text), text


def test_source_caption_is_quoted_attributed_and_not_scored_as_a_claim():
    from medtrinity_assets.generation.backends.grounded import QUOTED_CAPTION
    from medtrinity_assets.quality.consistency import quoted_clauses

    base = ct_liver_facts()
    facts = dataclasses.replace(base, image=dataclasses.replace(base.image, caption_in="Contrast CT, lesion in the left lobe"))
    res = GroundedBackend(seed=0).compose(facts)
    assert '"Contrast CT, lesion in the left lobe."' in res.description
    [clause] = [c for c in res.clauses if c["source"] == QUOTED_CAPTION]
    assert clause["field"] == "organ"
    assert clause["text"] in quoted_clauses({"clauses_json": res.clauses})
    request = build_request(facts)
    assert "Contrast CT, lesion in the left lobe" in request.user
