"""Description measures: each one tells a good text from a bad one."""

from __future__ import annotations

from medtrinity_assets.quality import description_metrics as M
from medtrinity_assets.roi.facts import RoiFacts

CYST = RoiFacts(label="liver cyst", side="right", region="liver", size_class="medium", intensity="hypodense",
                texture="homogeneous", shape="round", margin="well_defined")


def test_pipeline_phrases_are_found_and_clinical_text_passes():
    bad = "Two regions of interest are marked. Retrieved reference (Cyst): water density. The organ is not recorded in the metadata."
    assert [p.lower() for p in M.pipeline_phrases(bad)] == ["regions of interest", "marked", "retrieved", "not recorded", "metadata"]
    assert M.pipeline_phrases("Axial CT of the upper abdomen: a 14 x 12 mm fluid-attenuation cyst in the right liver lobe.") == []


def test_sentence_share_and_distinct_2():
    same = ["Axial CT. No lesion.", "Axial CT. A cyst.", "Axial CT. A nodule.", "MRI of the brain."]
    sentence, share = M.most_frequent_sentence(same)
    assert sentence == "Axial CT." and share == 0.75
    assert M.distinct_n(["a b c", "a b c"]) == 0.5 and M.distinct_n(["a b c", "d e f"]) == 1.0


def test_fact_coverage_counts_what_the_text_states():
    full = "A round, well-defined, homogeneous hypodense cyst of medium size in the liver, on the patient's right."
    assert all(M.roi_facts_expressed(full, CYST).values()) and len(M.roi_facts_expressed(full, CYST)) == 7
    partial = M.roi_facts_expressed("A cyst in the liver.", CYST)
    assert partial["region"] and not partial["side"] and not partial["margin"]
    sized = RoiFacts(label="nodule", long_axis_mm=12.4, short_axis_mm=9.0) if "long_axis_mm" in RoiFacts.__dataclass_fields__ else None
    if sized is not None:
        assert M.roi_facts_expressed("A 12 × 9 mm nodule.", sized)["size"]
        assert not M.roi_facts_expressed("A 20 × 9 mm nodule.", sized)["size"]


def test_stated_size_and_interpretive_clause():
    assert M.stated_size_mm("a 9 × 14 mm cyst") == (14.0, 9.0)
    assert M.stated_size_mm("an 8 mm nodule") == (8.0, 8.0) and M.stated_size_mm("a small nodule") is None
    passage = "Simple liver cyst. On CT: Sharply marginated round lesion of water density, homogeneous, with an imperceptible wall."
    own = "Its homogeneous content and well-defined margin fit a simple cyst."
    copied = "On CT, sharply marginated round lesion of water density, homogeneous, with an imperceptible wall."
    assert M.is_interpretive(own, CYST, [passage])
    assert not M.is_interpretive(copied, CYST, [passage])  # a copied sentence is decoration, not interpretation
    assert not M.is_interpretive("A simple cyst is a benign fluid-filled cavity.", CYST, [passage])  # no measured feature
