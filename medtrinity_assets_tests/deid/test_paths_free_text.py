"""Names that live only in folder names, file names and captions never reach exports, the card,
previews or DAGSTER_HOME (issue 15 item 3): the whole graph runs on hostile sources, then every byte
of those places is searched for the planted names, MRN and date."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

FAMILY, GIVEN, MRN, DOB = "Quellmar", "Ysolde", "MRN0048812", "19530417"
SECRETS = (FAMILY, GIVEN, "0048812", DOB, "1953-04-17")
BIN = Path(sys.executable).parent / "medtrinity"


def _hostile_sources(root: Path) -> Path:
    import pydicom
    from PIL import Image
    from pydicom.data import get_testdata_file

    from medtrinity_assets.demo.phantom import make_phantom, write_nifti

    # a DICOM folder whose header says ANON while the folder name carries the patient
    d = root / "dicom" / f"{FAMILY}_{GIVEN}_DOB{DOB}"
    d.mkdir(parents=True)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    ds.PatientName, ds.PatientID = "ANON", "ANON"
    ds.save_as(d / "IM0001.dcm")
    # a NIfTI named after the patient
    (root / "nifti").mkdir()
    write_nifti(make_phantom(0, 3, shape=(12, 48, 48)), root / "nifti" / f"{FAMILY}_{GIVEN}_{DOB}.nii.gz")
    # an image folder whose file name carries the MRN, and a CSV free-text column naming the patient
    (root / "photos").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "photos" / f"{GIVEN}_{FAMILY}_{MRN}.png")
    (root / "photos" / "labels.csv").write_text(
        f"filename,modality,organ,disease,labels\n{GIVEN}_{FAMILY}_{MRN}.png,DERM,skin,naevus,lesion of {GIVEN} {FAMILY}\n")
    # a caption naming the patient
    (root / "captions" / "images").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(root / "captions" / "images" / "c1.png")
    (root / "captions" / "images.jsonl").write_text(json.dumps({
        "image": "images/c1.png", "subject": "c1", "modality": "CR", "organ": "chest",
        "caption": f"Chest radiograph of {GIVEN} {FAMILY}, 67 years old, born 1953-04-17: clear lungs."}) + "\n")
    cfg = {"data_root": "out", "shards": 1, "salt": "hostile", "max_side": 128, "context_slices": 1,
           "sources": [
               {"name": "dicom_src", "format": "dicom", "path": "dicom", "roi": "none"},
               {"name": "nifti_src", "format": "nifti", "path": "nifti", "modality": "CT", "organ": "abdomen", "roi": "none"},
               {"name": "photo_src", "format": "image_folder", "path": "photos", "labels_csv": "photos/labels.csv", "roi": "none"},
               {"name": "caption_src", "format": "captions", "path": "captions", "roi": "none"},
           ],
           "rois": {"lesion_model": {"steps": 5, "train_indices": {"start": 0, "stop": 2},
                                     "eval_indices": {"start": 1000, "stop": 1001}}},  # no source uses it: keep it cheap
           "knowledge": {"corpora": [{"name": "core", "format": "core", "path": str(Path(__file__).resolve().parents[2] / "data" / "knowledge")}]}}
    path = root / "sources.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _hits(folder: Path) -> list[str]:
    out = []
    for p in folder.rglob("*"):
        if p.is_file():
            data = p.read_bytes().lower()
            for s in SECRETS:
                if s.lower().encode() in data:
                    out.append(f"{p.relative_to(folder)}: {s}")
    return out


@pytest.mark.slow
def test_no_name_from_paths_or_free_text_reaches_exports_card_previews_or_dagster_home(tmp_path):
    cfg = _hostile_sources(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "MEDTRINITY_CONFIG": str(cfg)}
    out = subprocess.run([str(BIN), "run", "--config", str(cfg), "--quiet"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=3600)
    assert out.returncode == 0, out.stderr[-3000:]
    data_root = tmp_path / "out"
    assert (data_root / "exports" / "hf").is_dir() and (data_root / "card" / "README.md").is_file()
    for place in (data_root / "exports", data_root / "card", data_root / "previews", home):
        assert _hits(place) == [], place
    for stream in (out.stdout, out.stderr):
        assert not any(s.lower() in stream.lower() for s in SECRETS)
    # the one private place keeps the paths for the operator
    import pyarrow.parquet as pq

    private = [r["rel_path"] for p in (data_root / "private").rglob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert any(FAMILY in p for p in private)
    # the free text was redacted before it was stored, and the card counts it
    card = (data_root / "card" / "README.md").read_text()
    assert "free-text redactions: " in card and "free-text redactions: none" not in card
    shutil.rmtree(home, ignore_errors=True)
