"""The export pixel PHI check: every image at risk read, a seeded sample of the rest with its stated bound,
one OCR read per distinct image across the five export formats (real RapidOCR on small real exports)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from medtrinity_assets.config import load_config
from medtrinity_assets.deid.pixels import export_risk
from medtrinity_assets.export.build import FORMATS, export_part, part_dir
from medtrinity_assets.quality import near_duplicates as nd
from medtrinity_assets.quality.phi import check_export_shard
from medtrinity_assets.quality.phi_pixels import miss_rate_bound, sample_rank
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.exports import write_near_duplicates
from medtrinity_assets_tests.support.quality import image_row, make_png, roi_row, triplet_row, write_partition

NO_TEXT = json.dumps({"policy": "redact", "ocr": None, "redacted_boxes": [], "text_fields": {}, "burned_in": None})
READ_CLEAN = json.dumps({"policy": "redact", "ocr": "rapidocr-onnxruntime 1.4.4", "ocr_ran": True,
                         "redacted_boxes": [], "text_fields": {}, "burned_in": None})
NAME, MRN = "DOE^JANE", "48213377"


def test_export_risk_names_why_an_image_is_read():
    redacted = json.dumps({"ocr": "x", "ocr_ran": True, "redacted_boxes": [{"bbox": [0, 0, 1, 1], "kind": "id"}]})
    kept = json.dumps({"ocr": "x", "ocr_ran": True, "redacted_boxes": [], "kept_phi_boxes": [{"kind": "date"}]})
    text = json.dumps({"ocr": None, "redacted_boxes": [], "text_fields": {"caption": {"person_name": 1}}})
    burned = json.dumps({"ocr": None, "redacted_boxes": [], "text_fields": {}, "burned_in": True})
    cases = [
        (("CT", "nifti", NO_TEXT), None),
        (("MR", "dicom", NO_TEXT), None),
        (("CT", "image_folder", NO_TEXT), "headerless_source"),
        (("US", "dicom", NO_TEXT), "modality_at_risk"),  # BurnedInAnnotation absent on a modality at risk
        (("dx", "dicom", NO_TEXT), "modality_at_risk"),
        (("CT", "dicom", burned), "burned_in_annotation"),
        (("CT", "dicom", redacted), "pixels_redacted_at_ingest"),
        (("CT", "dicom", kept), "pixels_redacted_at_ingest"),
        (("CT", "nifti", text), "free_text_redacted_at_ingest"),
        (("CT", "nifti", READ_CLEAN), "read_at_ingest"),  # pixel_ocr: always
        (("CT", "nifti", None), "no_deid_record"),
        (("CT", "nifti", "not json"), "no_deid_record"),
    ]
    for args, want in cases:
        assert export_risk(*args) == want, args


def test_miss_rate_bound_is_the_rule_of_three_and_zero_when_all_read():
    assert miss_rate_bound(300, 100_000) == pytest.approx(3 / 300, rel=0.01)  # 0.00994
    assert miss_rate_bound(300, 100_000) < 0.01 < miss_rate_bound(298, 100_000)  # 299 = ln 0.05 / ln 0.99, rounded up
    assert miss_rate_bound(59, 10_000) == pytest.approx(0.0495, abs=1e-3)
    assert miss_rate_bound(50, 50) == 0.0 and miss_rate_bound(0, 0) == 0.0
    assert miss_rate_bound(0, 10) is None


def test_sample_order_is_seeded_by_salt_and_shard():
    shas = [f"{i:064x}" for i in range(200)]
    first = sorted(shas, key=lambda s: sample_rank("salt", "s00", s))[:10]
    assert first == sorted(shas, key=lambda s: sample_rank("salt", "s00", s))[:10]  # deterministic
    assert first != sorted(shas, key=lambda s: sample_rank("salt", "s01", s))[:10]  # another shard, another sample
    assert first != sorted(shas, key=lambda s: sample_rank("other", "s00", s))[:10]  # unpredictable without the salt
    subset = [s for i, s in enumerate(shas) if i % 3]  # a format holding fewer images keeps the others' choices
    chosen_subset = sorted(subset, key=lambda s: sample_rank("salt", "s00", s))[:10]
    assert [s for s in first if s in subset] == chosen_subset[: len([s for s in first if s in subset])]


def test_phi_pixel_sample_setting_is_checked_at_load():
    from pydantic import ValidationError

    from medtrinity_assets.config.sections import QualitySection

    assert QualitySection().phi_pixel_sample == 300 and QualitySection(phi_pixel_sample="all").phi_pixel_sample == "all"
    with pytest.raises(ValidationError, match="0 no longer means every image"):
        QualitySection(phi_pixel_sample=0)


# ------------------------------------------------------------------ real exports, real OCR


def text_png(text: str, size=(360, 120)) -> bytes:
    """A dark image with ``text`` drawn in a plain 24 px font (what a screen capture carries)."""
    from pathlib import Path

    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), 24)
    img = Image.fromarray(np.full((size[1], size[0]), 20, np.uint8))
    ImageDraw.Draw(img).text((14, 40), text, font=font, fill=235)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_shard(tmp_path, at_risk_text: str, ct_text: str | None = None, n_clean: int = 10, sample="3"):
    """One source, one shard exported in all five formats: ``n_clean`` CT slices without text (not at risk),
    one ultrasound screen capture carrying ``at_risk_text``, and optionally one CT slice carrying ``ct_text``."""
    (tmp_path / "in" / "scans").mkdir(parents=True)
    cfg_path = tmp_path / "sources.yaml"
    cfg_path.write_text(f"data_root: {tmp_path / 'out'}\nshards: 4\nsalt: test-salt\n"
                        f"quality: {{phi_pixel_sample: {sample}}}\nsources:\n"
                        f"  - name: scans\n    format: nifti\n    path: {tmp_path / 'in' / 'scans'}\n"
                        "    licence: CC0-1.0\n    roi: none\n")
    cfg = load_config(cfg_path)
    layout = DataLayout(cfg.data_root)
    images, rois, triplets = [], [], []
    pngs = [(make_png(100 + i), "CT", NO_TEXT) for i in range(n_clean)]
    pngs.append((text_png(at_risk_text), "US", READ_CLEAN))
    if ct_text:
        pngs.append((text_png(ct_text), "CT", NO_TEXT))
    for i, (png, modality, deid) in enumerate(pngs):
        img = image_row(layout, f"scans-{i:03d}", "scans", f"sub-scans-{i}", png=png, modality=modality)
        img["deid_json"] = deid
        r = [roi_row(img["sample_id"], "scans")]
        images.append(img)
        rois += r
        triplets.append(triplet_row(img, r))
    write_partition(layout, "scans", "s00", images, rois, triplets)
    write_near_duplicates(layout)
    excl = nd.read(layout)
    for fmt in FORMATS:
        export_part(layout, fmt, "s00", ["scans"], excl)
    return cfg, layout


@pytest.fixture
def ocr_reads(monkeypatch):
    """The real engine, with every read recorded (by the image's bytes)."""
    import hashlib

    from medtrinity_assets.deid import ocr

    reads: list[str] = []
    real_get = ocr.get_engine

    class Counting:
        def __init__(self, engine):
            self.engine, self.name, self.version = engine, engine.name, engine.version

        def read(self, image):
            reads.append(hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest())
            return self.engine.read(image)

    monkeypatch.setattr(ocr, "get_engine", lambda name="rapidocr": Counting(real_get(name)))
    return reads


def test_images_at_risk_all_read_the_rest_sampled_each_image_read_once_across_formats(tmp_path, ocr_reads):
    cfg, layout = write_shard(tmp_path, "LIVER  5 cm  12MHz")  # harmless overlay text on the ultrasound
    reports = {}
    for fmt in FORMATS:
        res = check_export_shard(part_dir(layout, fmt, "s00"), cfg, layout, [NAME, MRN], "test-salt", seed="s00")
        assert res.ok, (fmt, res.describe())
        reports[fmt] = res.pixels
    for fmt, rep in reports.items():
        assert rep.at_risk == 1 and rep.at_risk_reasons == {"modality_at_risk": 1}, fmt
        assert rep.not_at_risk == 10 and rep.not_at_risk_read == 3 and rep.images_read == 4, fmt
        meta = rep.metadata()
        assert meta["pixel_miss_rate_bound_95"] == pytest.approx(1 - 0.05 ** (1 / 3), abs=1e-4)
        assert "a seeded sample of 3 of the 10 others read" in meta["pixel_read_statement"]
    # the five formats hold the same images (files, tar members, Parquet cells): 4 OCR reads in all, not 20
    assert len(ocr_reads) == len(set(ocr_reads)) == 4
    assert reports[FORMATS[0]].cached == 0 and all(reports[f].cached == 4 for f in FORMATS[1:])
    # the same images again: deterministic, nothing read twice
    again = check_export_shard(part_dir(layout, "hf", "s00"), cfg, layout, [NAME, MRN], "test-salt", seed="s00")
    assert again.pixels.cached == 4 and len(ocr_reads) == 4


def test_identifier_in_an_image_at_risk_fails_the_shard_whatever_the_sample(tmp_path, ocr_reads):
    cfg, layout = write_shard(tmp_path, f"{NAME}  MRN {MRN}", sample="1")
    res = check_export_shard(part_dir(layout, "webdataset", "s00"), cfg, layout, [NAME, MRN], "test-salt", seed="s00")
    assert not res.ok and res.pixels.at_risk == 1 and res.pixels.not_at_risk_read == 1
    assert res.pixels.metadata()["pixel_miss_rate_bound_95"] is None  # no bound is claimed once PHI is found
    assert "exported images" in res.describe() and NAME not in res.describe() and MRN not in res.describe()


@pytest.mark.slow  # six OCR reads of 360x120 captures
def test_sample_all_reads_images_where_no_text_was_expected(tmp_path, ocr_reads):
    cfg, layout = write_shard(tmp_path, "LIVER", ct_text=f"MRN {MRN}", n_clean=4, sample="all")
    res = check_export_shard(part_dir(layout, "llava", "s00"), cfg, layout, [NAME, MRN], "test-salt", seed="s00")
    assert not res.ok and res.pixels.not_at_risk == 5 and res.pixels.not_at_risk_read == 5
    assert res.pixels.kinds.get("id") == 1
