"""The identifier detector on free text, path names and OCR lines: what it must catch and what it must leave."""

import pytest

from medtrinity_assets.deid.detect import KnownValues, classify_value, find_phi, redact_text


@pytest.mark.parametrize("text,kind", [
    ("Chest radiograph of Grace Hopper, 67 years old.", "person_name"),
    ("Chest radiograph of Talia Zorvik, 67", "person_name"),  # neither word is a census name: two rare capitalised words
    ("HOPPER^GRACE", "person_name"),
    ("OKAFOR, Maria", "person_name"),
    ("Name: ZORVIK TALIA", "person_name"),
    ("Dr. Kowalski reviewed", "person_name"),
    ("seen by J. Lindqvist", "person_name"),
    ("MRN 12345678", "id"),
    ("PID-0042-7731", "id"),
    ("630P630", "id"),
    ("123-45-6789", "id"),
    ("DOB: 01/02/1960", "date"),
    ("26-AUG-2004", "date"),
    ("Aug 26, 2004", "date"),
    ("2004-08-26", "date"),
    ("+2:09:04", "time"),
    ("Lakeside Imaging Center", "institution"),
    ("St Mary's Hospital", "institution"),
    ("jane.doe@example.org", "contact"),
])
def test_identifiers_are_found_with_their_kind(text, kind):
    found = find_phi(text)
    assert found and kind in {f.kind for f in found}, (text, found)


@pytest.mark.parametrize("text", [
    "Axial contrast-enhanced CT of the upper abdomen showing a 12 mm hypodense liver cyst on the patient's right.",
    "Shepp-Logan head phantom: an elliptical skull outline enclosing two darker ventricle-like ellipses.",
    "Tissue section with brown chromogen marking the immunoreactive cells lining the glands.",
    "a small hypodense lesion in the long axis of the white matter of a young adult",
    "L", "R", "5 cm", "C5-1", "D 12.0cm", "FR 30Hz", "TIS<0.4 MI=0.8 AO=100%", "3cm3cm M12L", "LYMPH NODE", "CINE 0118",
    "PWR", "MSCSKEL", "Gn 52", "LT KIDNEY", "PORTABLE", "W:1500 L:-600", "2.5",
])
def test_harmless_text_and_overlays_are_left_alone(text):
    assert find_phi(text) == [], (text, find_phi(text))


def test_known_name_in_its_usual_spellings_but_not_its_common_word_alone():
    known = KnownValues.from_values(["SMALL^JOHN", "ZORVIK^TALIA"])
    for text in ("John Small", "SMALL^JOHN", "SMALL, John", "J. Small", "Small_John", "john-small"):
        assert {f.kind for f in find_phi(text, known, names=False)} == {"patient_name"}, text
    assert find_phi("a small lesion, John", known, names=False) == []  # lone ordinary words identify nobody
    assert [f.kind for f in find_phi("the zorvik file", known, names=False)] == ["patient_name"]  # a rare part alone


def test_redacted_text_says_the_kind_never_the_value():
    known = KnownValues.from_values(["HOPPER^GRACE", "MRN00417", "BAPTIST MED CTR", "20040826"])
    text = "Grace Hopper (MRN00417) scanned at BAPTIST MED CTR on 2004-08-26: no focal lesion."
    clean, found = redact_text(text, known)
    assert clean == "[patient name part] ([ID]) scanned at [institution] on [date]: no focal lesion."
    assert [f.kind for f in found] == ["patient_name", "id", "institution", "date"]


def test_values_are_classified_by_kind():
    assert classify_value("DOE^JANE") == "patient_name"
    assert classify_value("20040826") == "date"
    assert classify_value("1.2.840.10008.5.1") == "id"
    assert classify_value("13US1") == "id"
    assert classify_value("BAPTIST MED CTR") == "institution"
    # placeholders and anonymised values are not searched at all
    assert len(KnownValues.from_values(["ANONYMOUS", "----", "00000", "", "NA"])) == 0


def test_ocr_lines_run_together_are_still_caught_and_overlays_kept():
    from medtrinity_assets.deid.ocr import TextBox
    from medtrinity_assets.deid.pixels import classify_boxes

    def box(text, x, y, score=0.95):
        return TextBox(text, (x, y, x + 10 * len(text), y + 14), score)

    boxes = [box("NORTHGATEMEDCTR", 0, 0), box("PRUCHNAPRIYA", 0, 20), box("Varga~Maelis", 0, 40),
             box("Patient:MaelisVantiell", 0, 60), box("DOE", 300, 80), box("JANE", 340, 80),
             box("PORTABLE", 0, 100), box("LT KIDNEY", 0, 120), box("C5-1", 0, 140), box("MSCSKEL", 0, 160),
             box("Xqzvbrt", 0, 180, score=0.4),  # texture read as letters with a low score
             box("05 :18: 00", 0, 200)]  # a time read with spaces around its colons
    flagged = classify_boxes(boxes, None)
    assert set(flagged) == {0, 1, 2, 3, 4, 5, 11}, flagged
    # the export verification keeps to header values and name/ID/date/time patterns
    strict = classify_boxes(boxes, None, unknown=False)
    assert 0 not in strict and {2, 3} <= set(strict)


def test_two_rare_capitalised_words_are_a_name_but_eponyms_and_grades_are_not():
    assert redact_text("lesion of Ysolde Quellmar")[0] == "lesion of [person name]"
    for text in ("Hodgkin Lymphoma of the neck", "Bosniak IIF cyst", "Hashimoto Thyroiditis", "Crohn Disease"):
        assert find_phi(text) == [], text
