"""Small real DICOM inputs for the DICOM tests: copies of pydicom's files, damaged files, PHI copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data

from medtrinity_assets.config import SourceSpec

# Identifiers injected into copies of real files: none may reach any output.
PHI = {
    "PatientName": "ZEBEDEE^QUIXOTE",
    "PatientID": "QX-81234567",
    "PatientBirthDate": "19490213",
    "PatientAddress": "12 Rue Imaginaire Quimper",
    "OtherPatientIDs": "MRN-7788-4411",
    "InstitutionName": "Hopital Fictif Sainte Zoe",
    "ReferringPhysicianName": "MOREAU^XAVIERUS",
    "PerformingPhysicianName": "LEGRAND^OPHELIA",
    "AccessionNumber": "ACCX5550123",
    "StudyID": "STQX9931",
}
PRIVATE_PHI = "PRIVZEBEDEE77"
PHI_STRINGS = [*PHI.values(), PRIVATE_PHI, "ZEBEDEE", "QUIXOTE", "XAVIERUS", "OPHELIA"]


def data_file(name: str) -> Path:
    path = pydicom.data.get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is missing (install pydicom-data)"
    return Path(path)


def source(path: Path, **options) -> SourceSpec:
    return SourceSpec(name="dicom_test", format="dicom", path=path, options=options)


def copy_into(folder: Path, name: str, dest_name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / (dest_name or name)
    shutil.copy(data_file(name), dest)
    return dest


def inject_phi(src: Path, dest: Path, *, phi: dict[str, str] = PHI, private: str = PRIVATE_PHI) -> Path:
    """A copy of ``src`` carrying the identifiers of ``phi`` plus one in a private tag."""
    ds = pydicom.dcmread(src, force=True)
    for kw, value in phi.items():
        setattr(ds, kw, value)
    block = ds.private_block(0x0029, "QX TEST CREATOR", create=True)
    block.add_new(0x10, "LO", private)
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest)
    return dest


def small_phantom(seed: int = 7, index: int = 0, shape=(16, 64, 64)):
    """A phantom small enough for tests that still holds one lesion (a liver cyst)."""
    from medtrinity_assets.demo.phantom import make_phantom

    return make_phantom(seed, index, shape=shape)


def write_bad_files(folder: Path) -> dict[str, Path]:
    """One file per bad-input kind, each named after what is wrong with it."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    out["empty"] = folder / "empty_file"
    out["empty"].write_bytes(b"")
    raw = data_file("CT_small.dcm").read_bytes()
    out["truncated"] = folder / "truncated_ct"
    out["truncated"].write_bytes(raw[: len(raw) // 2])
    out["random"] = folder / "random_bytes.dcm"
    out["random"].write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.Rows = 256  # header claims 4x the pixels that are stored
    out["short"] = folder / "claims_more_pixels"
    ds.save_as(out["short"])
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    del ds.PixelData
    ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["nopixels"])
    out["nopixels"] = folder / "no_pixel_data"
    ds.save_as(out["nopixels"])
    ds = pydicom.dcmread(data_file("MR_small_jp2klossless.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video: no pixel decoder exists
    ds.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["jxl"])
    out["undecodable"] = folder / "mpeg2_image"
    ds.save_as(out["undecodable"], enforce_file_format=False)
    return out
