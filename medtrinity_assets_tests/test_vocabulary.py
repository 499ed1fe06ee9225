"""The one vocabulary: codes map to one modality class, words are found in text, articles read aloud right."""

from __future__ import annotations

import pytest

from medtrinity_assets import vocabulary as V


@pytest.mark.parametrize("code, cls", [("CT", "CT"), ("MR", "MR"), ("MRI", "MR"), ("CR", "XR"), ("DX", "XR"),
                                       ("x-ray", "XR"), ("PT", "PET"), ("NM", "NM"), ("XA", "XA"), ("SM", "HISTO"),
                                       ("HISTOLOGY", "HISTO"), ("OP", "FUNDUS"), ("OT", ""), ("", "")])
def test_every_table_code_has_one_class(code, cls):
    assert V.modality_class(code) == cls


def test_codes_belong_to_exactly_one_class_and_classes_name_each_other_consistently():
    seen = {}
    for m in V.MODALITIES:
        for c in m.codes:
            assert c not in seen, f"{c} is in {seen[c]} and {m.code}"
            seen[c] = m.code
        for other in m.compatible:  # compatibility is symmetric: PET may be named on CT and CT on PET
            assert m.code in V.MODALITY_BY_CLASS[other].compatible, (m.code, other)
    # nuclear medicine and PET are kept apart (they may be named together), and so are XA and plain X-ray
    assert V.modality_class("NM") != V.modality_class("PT") and "PET" in V.MODALITY_BY_CLASS["NM"].compatible
    assert "XR" in V.MODALITY_BY_CLASS["XA"].compatible


def test_words_in_text():
    assert V.modalities_in("T2-weighted MRI of the brain") == {"MR"}
    assert V.modalities_in("A chest radiograph; no CT was done") == {"XR", "CT"}
    assert V.organs_in("hepatic and renal lesions beside the spleen") == {"liver", "kidney", "spleen"}
    assert V.organs_in("a small bowel loop") == {"bowel"}
    assert V.sides_in("left lung, right kidney, bilaterally") == {"left", "right", "bilateral"}
    abdomen = V.organs_of_phrase("abdomen")
    assert {"abdomen", "liver", "kidney", "bone"} <= abdomen and "brain" not in abdomen
    assert V.organ_family("retina") == "eye" and V.organ_family("liver") == "liver"
    assert "bone" not in V.ORGAN_REGION  # seen in every region: it places an image in none


@pytest.mark.parametrize("phrase, expected", [("MRI", "an MRI"), ("CT slice", "a CT slice"), ("X-ray", "an X-ray"),
                                              ("ultrasound image", "an ultrasound image"), ("radiograph", "a radiograph"),
                                              ("X-ray angiogram", "an X-ray angiogram"), ("US image", "a US image")])
def test_articles(phrase, expected):
    assert V.with_article(phrase) == expected


def test_names_written():
    assert V.modality_names("CT") == ("computed tomography", "CT")
    assert V.modality_names("CR") == ("radiograph", "X-ray")
    assert V.modality_names("OT") == ("medical image", "image")
    assert V.shown_code("X-RAY") == "CR" and V.shown_code("MRI") == "" and V.shown_code("HISTO") == ""
    assert V.modality("MR").qa_name == "MRI" and V.modality("DX").qa_name == "X-ray"
    assert V.humanise("left_kidney-cyst") == "left kidney cyst"
    assert V.join_words(["a", "b", "c"]) == "a, b and c"
