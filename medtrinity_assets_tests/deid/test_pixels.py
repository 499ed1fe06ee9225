"""Burned-in text: the real ultrasound from pydicom-data is redacted through the ingest path, and a
generated set with known truth meets the recall / clean-unchanged targets."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from medtrinity_assets.config import load_config
from medtrinity_assets.deid.detect import ocr_fold
from medtrinity_assets.deid.ocr import get_engine
from medtrinity_assets.deid.pixels import needs_ocr, redact_image
from medtrinity_assets.ingest import build_images, build_manifest
from medtrinity_assets.storage import DataLayout


def _config(tmp_path, sources):
    import yaml

    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"data_root": "out", "shards": 1, "salt": "t", "max_side": 512, "sources": sources}))
    return load_config(path)


@pytest.mark.slow  # two OCR passes over a 640x480 frame
def test_real_ultrasound_is_redacted_before_it_is_stored(tmp_path):
    from pydicom.data import get_testdata_file

    src = tmp_path / "us"
    src.mkdir()
    shutil.copy(get_testdata_file("US1_J2KR.dcm", download=False), src / "US1_J2KR.dcm")
    cfg = _config(tmp_path, [{"name": "us", "format": "dicom", "path": "us", "roi": "none"}])
    layout = DataLayout(cfg.data_root)
    source = cfg.source("us")
    build_manifest(source, salt="t", shards=1, layout=layout)
    res = build_images(cfg, source, "s00", layout, salt="t", workers=1)
    assert res.quarantine.num_rows == 0 and res.table.num_rows == 1
    row = res.table.to_pylist()[0]
    record = json.loads(row["deid_json"])
    kinds = {b["kind"] for b in record["redacted_boxes"]}
    assert record["ocr"].startswith("rapidocr-onnxruntime") and {"institution", "id", "time"} <= kinds
    stored = np.asarray(Image.open(layout.resolve(row["image_path"])))
    read = " ".join(ocr_fold(b.text) for b in get_engine().read(stored))
    for gone in ("BAPTIST", "630P630", "78F78", "44CG43", "22G22", "78DR78", "20904"):
        assert ocr_fold(gone) not in read, gone
    for kept in ("LYMPH", "NODE", "PWR"):  # the anatomy label and the Doppler overlay stay
        assert kept in read, kept
    # the stored image is what was hashed: the PNG's sha256 is the row's
    import hashlib
    assert hashlib.sha256(layout.resolve(row["image_path"]).read_bytes()).hexdigest() == row["image_sha256"]


def test_which_images_are_read():
    assert needs_ocr("auto", "US", "dicom", None) and needs_ocr("auto", "CR", "dicom", False)
    assert needs_ocr("auto", "CT", "dicom", True)  # BurnedInAnnotation YES
    assert not needs_ocr("auto", "CT", "dicom", None) and not needs_ocr("auto", "MR", "nifti", None)
    assert needs_ocr("auto", "CT", "image_folder", None) and needs_ocr("auto", "", "captions", None)
    assert not needs_ocr("never", "US", "dicom", True) and needs_ocr("always", "MR", "nifti", None)


@pytest.mark.slow
def test_generated_set_recall_and_clean_images_unchanged():
    from medtrinity_assets.deid.detect import KnownValues
    from medtrinity_assets.demo.burned_in import make_set

    engine = get_engine()
    images = make_set(26, 14, seed=7, size=320)
    recalled = unchanged = 0
    phi = [s for s in images if s.has_phi]
    for s in images:
        known = KnownValues.from_values(s.header_values) if s.header_values else None
        out, _, rep = redact_image(s.image, None, engine, known)
        if s.has_phi:
            tokens = {ocr_fold(t) for p in s.phi_texts for t in p.replace("^", " ").replace(",", " ").split()
                      if len(ocr_fold(t)) >= 3 and ocr_fold(t) not in {"NAME", "PATIENT", "MRN", "ID", "ACC", "DOB"}}
            read = " ".join(ocr_fold(b.text) for b in engine.read(out))
            recalled += not any(t in read for t in tokens)
        else:
            unchanged += bool((out == s.image).all())
    assert recalled / len(phi) >= 0.95 and unchanged / (len(images) - len(phi)) >= 0.9, (recalled, unchanged)
