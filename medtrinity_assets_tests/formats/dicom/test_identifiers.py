"""PHI: identifiers injected into copies of real DICOM files never reach anything the pipeline returns."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml

from medtrinity_assets.formats.base import ItemRef, Quarantined
from medtrinity_assets.formats.dicom import DicomReader
from medtrinity_assets_tests.support.dicom import PHI, PHI_STRINGS, PRIVATE_PHI, data_file, inject_phi, small_phantom, source

REAL = ["CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm", "emri_small.dcm", "RG3_J2KR.dcm"]
PHANTOM_PHI = {"patient_name": "DOE^JANE", "patient_id": "PID-0042-7731", "birth_date": "19610704",
               "accession": "ACC99887766", "institution": "SAINT EXAMPLE GENERAL HOSPITAL",
               "physician": "HOUSE^GREGORY", "address": "221B BAKER STREET LONDON"}
PHANTOM_STRINGS = [*PHANTOM_PHI.values(), "DOE_JANE", "GREGORY", "BAKER STREET"]


def build_phi_source(root: Path) -> Path:
    """Real files with identifiers injected, stored under a folder and file names made of them."""
    from medtrinity_assets.demo.dicom_phantom import write_phantom_dicom

    src = root / "dicom_in"
    patient_dir = src / "ZEBEDEE_QUIXOTE_QX-81234567"
    for i, name in enumerate(REAL):
        inject_phi(data_file(name), patient_dir / f"{PHI['PatientID']}_{i}" / f"ZEBEDEE^QUIXOTE_{name}")
    # a damaged file in the patient's folder: its quarantine row must not name the patient either
    (patient_dir / "ZEBEDEE_broken.dcm").write_bytes(b"")
    # the phantom study with its own identifiers in headers, private tag, folder and file names
    write_phantom_dicom(small_phantom(shape=(8, 40, 40)), src, **PHANTOM_PHI)
    return src


def _all_text(obj) -> str:
    if dataclasses.is_dataclass(obj):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return json.dumps(obj, default=lambda o: o.tolist() if isinstance(o, np.ndarray) and o.dtype.kind in "US" else str(o))


def _leaks(text: str, strings) -> list[str]:
    low = text.lower()
    return [s for s in strings if s.lower() in low]


def test_reader_outputs_carry_no_identifier(tmp_path):
    src = build_phi_source(tmp_path)
    reader = DicomReader()
    spec = source(src)
    results = list(reader.scan(spec))
    items = [r for r in results if isinstance(r, ItemRef)]
    bad = [r for r in results if isinstance(r, Quarantined)]
    assert len(items) == len(REAL) + 1 and len(bad) == 1
    strings = PHI_STRINGS + PHANTOM_STRINGS
    for ref in items:
        # the raw identifiers are handed over for scrubbing ...
        assert PHI["PatientName"] in ref.identifiers or PHANTOM_PHI["patient_name"] in ref.identifiers
        assert PRIVATE_PHI in ref.identifiers or PHANTOM_PHI["patient_id"] in " ".join(ref.identifiers)
        # ... and nothing meant for tables holds them
        assert not _leaks(ref.rel_path, strings), ref.rel_path
        assert "[redacted]" in ref.rel_path
        item = reader.load(spec, ref)
        shown = dataclasses.replace(item, pixels=np.zeros(1), label_map=None)
        assert not _leaks(_all_text(shown), strings)
    for q in bad:
        assert not _leaks(_all_text(q), strings), q


def _write_config(root: Path, src: Path) -> Path:
    cfg = {"data_root": "out", "shards": 2, "salt": "phi-test-salt", "max_side": 64, "context_slices": 1,
           "sources": [{"name": "phi_dicom", "format": "dicom", "path": str(src), "roi": "ground_truth",
                        "licence": "CC0-1.0"}]}
    path = root / "sources.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_end_to_end_no_identifier_in_any_output_file(tmp_path):
    from medtrinity_assets import ingest
    from medtrinity_assets.config import load_config
    from medtrinity_assets.storage import DataLayout, write_table

    src = build_phi_source(tmp_path)
    cfg = load_config(_write_config(tmp_path, src))
    spec = cfg.source("phi_dicom")
    layout = DataLayout(cfg.data_root)
    manifest, quarantine = ingest.build_manifest(spec, salt=cfg.salt, shards=cfg.shards)
    assert manifest.num_rows == len(REAL) + 1 and quarantine.num_rows == 1
    write_table(layout.table_path("manifest", "phi_dicom"), manifest)
    write_table(layout.table_path("quarantine", {"source": "phi_dicom", "shard": "scan"}), quarantine)
    n_rows = 0
    for shard in sorted(set(manifest.column("shard").to_pylist())):
        res = ingest.build_images(cfg, spec, shard, layout, salt=cfg.salt)
        n_rows += res.table.num_rows
        write_table(layout.table_path("images", {"source": "phi_dicom", "shard": shard}), res.table)
        write_table(layout.table_path("quarantine", {"source": "phi_dicom", "shard": shard}), res.quarantine)
    assert n_rows >= len(REAL) + 1
    strings = PHI_STRINGS + PHANTOM_STRINGS
    inputs = b" ".join(p.read_bytes().lower() for p in src.rglob("*") if p.is_file())
    assert all(s.lower().encode() in inputs for s in [*PHI.values(), PRIVATE_PHI, *PHANTOM_PHI.values()])
    files = [p for p in Path(cfg.data_root).rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.suffix == ".png" for p in files)
    for p in files:
        data = p.read_bytes().lower()
        found = [s for s in strings if s.lower().encode() in data]
        assert not found, (p, found)
        assert not _leaks(str(p.relative_to(cfg.data_root)), strings)
        if p.suffix == ".parquet":  # compressed pages could hide a string from the byte scan
            text = json.dumps(pq.read_table(p).to_pylist(), default=str)
            assert not _leaks(text, strings), (p, _leaks(text, strings))


def test_scan_rel_paths_keep_their_shape(tmp_path):
    """Scrubbing replaces the identifying parts only: the operator can still tell the files apart."""
    src = build_phi_source(tmp_path)
    refs = [r for r in DicomReader().scan(source(src)) if isinstance(r, ItemRef)]
    rels = sorted(r.rel_path for r in refs)
    assert len(set(rels)) == len(rels)
    assert any(r.endswith("CT_small.dcm") for r in rels), rels


def test_path_scrubber_agrees_with_deid_scrub_and_scales():
    from medtrinity_assets import deid
    from medtrinity_assets.formats.dicom.identifiers import path_scrubber as _scrubber

    ids = ["DOE^JANE", "PID-0042-7731", "19610704", "ABC"] + [f"1.2.826.0.1.99.{i}" for i in range(2000)]
    scrub = _scrubber(ids)
    for path in ["a/DOE_JANE_PID-0042-7731/x.dcm", "b/janedoe/1.2.826.0.1.99.17/IM1", "c/abcdef/19610704.dcm",
                 "d/nothing/here.dcm", "e/Doe.Jane/1.2.826.0.1.99.1999"]:
        assert scrub(path) == deid.scrub(path, ids), path


def test_identifier_typed_into_an_allowed_field_is_dropped(tmp_path):
    import pydicom

    folder = tmp_path / "typed"
    folder.mkdir()
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.PatientName = "QUIXOTE^ZEB"
    ds.BodyPartExamined = "QUIXOTE CHEST"  # an operator typed the name into a free-text field
    ds.save_as(folder / "ct")
    reader = DicomReader()
    ref = next(r for r in reader.scan(source(folder)) if isinstance(r, ItemRef))
    meta = reader.load(source(folder), ref).meta
    assert "BodyPartExamined" not in meta and "body_part" not in meta
    assert meta["Modality"] == "CT"
