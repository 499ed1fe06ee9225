"""Every kind of bad input the readers know, mixed with good files, across every reader.

:func:`write_mixed_sources` writes one source per reader (and per MSD/nnU-Net dialect) into a
folder, with a YAML configuration, and returns what must come out: the good items (each kept) and
the bad inputs (each exactly one quarantine row, of the named class). Hostile cases from issue 15
(non-UTF-8 names, an sform of zeros or NaN, a 2^40 label, ``iscrowd: "yes"``, a list as image id,
JSON nested 100k levels, duplicate COCO ids, GIF/WebP and other kinds in an image folder, a caption
line that is not UTF-8, deflated DICOM, impossible DICOM headers, series gaps and missing
positions) sit beside the hold-out kinds the reader tests already use (empty, truncated, random
bytes, short pixel data, no pixels, undecodable syntax, bombs, paths leading out ...).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import yaml
from pydicom.uid import generate_uid

from medtrinity_assets_tests.support.dicom import data_file, write_bad_files
from medtrinity_assets_tests.support.formats import (
    copy_nib,
    png_with_declared_size,
    ras_affine,
    save_nifti,
    save_png,
    truncate,
)

NON_UTF8 = os.fsdecode(b"caf\xe9")  # a Latin-1 byte that is not UTF-8: Python holds it as a surrogate escape


@dataclass(frozen=True)
class Bad:
    source: str
    rel_path: str  # as the quarantine row shows it (after ingest.table_text)
    error_class: str
    severity: str = "error"


@dataclass
class Expected:
    good: dict[str, list[str]] = field(default_factory=dict)  # source -> rel_path prefixes, one item each
    bad: list[Bad] = field(default_factory=list)

    def keep(self, source: str, prefix: str) -> None:
        self.good.setdefault(source, []).append(prefix)

    def row(self, source: str, rel_path: str, error_class: str, severity: str = "error") -> None:
        self.bad.append(Bad(source, rel_path, error_class, severity))


def shown(name: str) -> str:
    """A file name as tables show it (non-UTF-8 bytes as \\xNN)."""
    from medtrinity_assets.ingest import table_text

    return table_text(name)


# ------------------------------------------------------------------ DICOM


def _ct(**changes) -> pydicom.Dataset:
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["mixed", repr(sorted(changes.items()))])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["mixed-sop", repr(sorted(changes.items()))])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for kw, value in changes.items():
        setattr(ds, kw, value)
    return ds


def _series(folder: Path, positions: list[float | None], tag: str) -> list[Path]:
    """CT_small copies forming one series; ``None`` = a slice without ImagePositionPatient."""
    template = pydicom.dcmread(data_file("CT_small.dcm"))
    series_uid = generate_uid(entropy_srcs=["series", tag])
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, z in enumerate(positions):
        ds = copy.deepcopy(template)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["series", tag, str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        if z is None:
            del ds.ImagePositionPatient
        else:
            x, y, z0 = (float(v) for v in template.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z0 + z]
        path = folder / f"s{k:02d}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


def write_dicom(folder: Path, exp: Expected, name: str = "dicom") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # good
    pydicom.dcmread(data_file("CT_small.dcm")).save_as(folder / "ct_small.dcm")
    exp.keep(name, "ct_small.dcm")
    pydicom.dcmread(data_file("MR_small.dcm")).save_as(folder / "mr_small.dcm")
    exp.keep(name, "mr_small.dcm")
    (folder / "deflated.dcm").write_bytes(data_file("image_dfl.dcm").read_bytes())  # valid deflated DICOM
    exp.keep(name, "deflated.dcm")
    _series(folder / "series_ok", [0.0, 1.0, 2.0, 3.0], "ok")
    exp.keep(name, "series_ok/")
    odd = _ct(PatientID="NONUTF8-1")
    odd.save_as(folder / f"{NON_UTF8}_ct.dcm")
    exp.keep(name, shown(f"{NON_UTF8}_ct.dcm"))
    # kept with a warning row: a 20 mm gap, a slice without position
    _series(folder / "series_gap", [0.0, 1.0, 2.0, 22.0, 23.0], "gap")
    exp.keep(name, "series_gap/")
    exp.row(name, "series_gap/s00.dcm", "series_gap", "warning")
    _series(folder / "series_nopos", [0.0, 1.0, None], "nopos")
    exp.keep(name, "series_nopos/")
    exp.row(name, "series_nopos/s00.dcm", "series_missing_positions", "warning")
    # hold-out kinds of the DICOM tests
    classes = {"empty": "empty_file", "truncated": "truncated_dicom", "random": "not_dicom",
               "short": "pixel_data_short", "nopixels": "no_pixel_data", "undecodable": "undecodable_transfer_syntax"}
    for kind, path in write_bad_files(folder / "holdout").items():
        exp.row(name, f"holdout/{path.name}", classes[kind])
    # physically impossible headers and pixel modules that cannot be decoded
    impossible = {
        "slope_zero.dcm": ({"RescaleSlope": 0}, "impossible_rescale"),
        "spacing_zero.dcm": ({"PixelSpacing": [0, 0]}, "impossible_geometry"),
        "position_nan.dcm": ({"ImagePositionPatient": ["nan", "0", "0"]}, "impossible_geometry"),
        "orientation_nan.dcm": ({"ImageOrientationPatient": ["nan", 0, 0, 0, 1, 0]}, "impossible_geometry"),
        "bits_stored_20.dcm": ({"BitsStored": 20}, "bad_pixel_header"),
        "rows_zero.dcm": ({"Rows": 0}, "bad_pixel_header"),
        "photometric_unknown.dcm": ({"PhotometricInterpretation": "FANCY"}, "bad_pixel_header"),
    }
    (folder / "impossible").mkdir()
    for file_name, (changes, error_class) in impossible.items():
        _ct(**changes).save_as(folder / "impossible" / file_name)
        exp.row(name, f"impossible/{file_name}", error_class)


# ------------------------------------------------------------------ NIfTI / MSD / nnU-Net


def _volume(seed: int, shape=(12, 10, 6)) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 50, shape).astype(np.float32)


def _label(shape=(12, 10, 6), value: int = 1, dtype=np.uint8) -> np.ndarray:
    lab = np.zeros(shape, dtype)
    lab[3:7, 3:6, 2:4] = value
    return lab


def _nifti_with_sform(path: Path, srow: np.ndarray) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(_volume(9), ras_affine())
    hdr = img.header
    hdr["qform_code"] = 0
    hdr["sform_code"] = 1
    hdr["srow_x"], hdr["srow_y"], hdr["srow_z"] = srow[0], srow[1], srow[2]
    nib.save(img, str(path))
    raw = bytearray(path.read_bytes())  # nibabel rewrites a zero sform on save: write the fields directly
    raw[280:328] = np.asarray(srow[:3], dtype="<f4").tobytes()
    raw[252:254] = np.int16(0).tobytes()  # qform_code
    raw[254:256] = np.int16(1).tobytes()  # sform_code
    path.write_bytes(bytes(raw))


def write_nifti(folder: Path, exp: Expected, name: str = "nifti") -> None:
    images, labels = folder / "images", folder / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    copy_nib("anatomical.nii", images, "brain.nii")
    exp.keep(name, "brain.nii")
    save_nifti(images / "case_a.nii.gz", _volume(1), ras_affine())
    save_nifti(labels / "case_a.nii.gz", _label(), ras_affine())
    exp.keep(name, "case_a.nii.gz")
    save_nifti(images / f"{NON_UTF8}.nii.gz", _volume(2), ras_affine())
    exp.keep(name, shown(f"{NON_UTF8}.nii.gz"))
    # hold-out kinds
    (images / "broken.nii.gz").write_bytes(b"\x1f\x8b\x08\x00truncated")
    exp.row(name, "broken.nii.gz", "unreadable_header")
    (images / "random.nii").write_bytes(np.random.default_rng(0).bytes(600))
    exp.row(name, "random.nii", "unreadable_header")
    truncate(copy_nib("anatomical.nii", images, "cut_plain.nii"), 0.5)
    exp.row(name, "cut_plain.nii", "truncated")
    save_nifti(images / "all_nan.nii.gz", np.full((6, 6, 4), np.nan, np.float32), ras_affine())
    exp.row(name, "all_nan.nii.gz", "all_nan")
    save_nifti(images / "shape_pair.nii.gz", _volume(3), ras_affine())
    save_nifti(labels / "shape_pair.nii.gz", _label((5, 5, 5)), ras_affine())
    exp.row(name, "shape_pair.nii.gz", "label_shape_mismatch")
    # issue 15: an sform of zeros or NaN, a label above 65,535
    _nifti_with_sform(images / "sform_zero.nii", np.zeros((3, 4)))
    exp.row(name, "sform_zero.nii", "impossible_geometry")
    nan_rows = np.eye(4)[:3].copy()
    nan_rows[0, 0] = np.nan
    _nifti_with_sform(images / "sform_nan.nii", nan_rows)
    exp.row(name, "sform_nan.nii", "impossible_geometry")
    save_nifti(images / "huge_label.nii.gz", _volume(4), ras_affine())
    import nibabel as nib

    huge = nib.Nifti1Image(_label(value=2**40, dtype=np.int64), ras_affine(), dtype=np.int64)
    huge.set_qform(ras_affine(), code=1)
    nib.save(huge, str(labels / "huge_label.nii.gz"))
    exp.row(name, "huge_label.nii.gz", "label_value_too_large")


def write_msd_listed(folder: Path, exp: Expected, name: str = "msd") -> None:
    save_nifti(folder / "imagesTr" / "liver_001.nii.gz", _volume(5), ras_affine())
    save_nifti(folder / "labelsTr" / "liver_001.nii.gz", _label(), ras_affine())
    exp.keep(name, "imagesTr/liver_001.nii.gz")
    doc = {"name": "Liver", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver"},
           "training": [{"image": "./imagesTr/liver_001.nii.gz", "label": "./labelsTr/liver_001.nii.gz"},
                        {"image": "./imagesTr/liver_404.nii.gz", "label": "./labelsTr/liver_404.nii.gz"},
                        {"image": "../../outside.nii.gz", "label": "./labelsTr/liver_001.nii.gz"}]}
    (folder / "dataset.json").write_text(json.dumps(doc))
    exp.row(name, "imagesTr/liver_404.nii.gz", "missing_file")
    exp.row(name, "../../outside.nii.gz", "path_outside_source")


def write_msd_deep(folder: Path, exp: Expected, name: str = "msd_deep") -> None:
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text("[" * 100_000 + "]" * 100_000)
    exp.row(name, "dataset.json", "bad_dataset_json")


def write_msd_without_list(folder: Path, exp: Expected, name: str = "msd_nolist") -> None:
    save_nifti(folder / "imagesTr" / "spleen_7.nii.gz", _volume(6), ras_affine())
    save_nifti(folder / "labelsTr" / "spleen_7.nii.gz", _label(), ras_affine())
    (folder / "dataset.json").write_text(json.dumps({"name": "Spleen", "modality": {"0": "CT"},
                                                     "labels": {"0": "background", "1": "spleen"}}))
    exp.keep(name, "imagesTr/spleen_7.nii.gz")


def write_nnunet_v2(folder: Path, exp: Expected, name: str = "nnunet") -> None:
    save_nifti(folder / "imagesTr" / "kidney_001_0000.nii.gz", _volume(7), ras_affine())
    save_nifti(folder / "labelsTr" / "kidney_001.nii.gz", _label(), ras_affine())
    exp.keep(name, "imagesTr/kidney_001_0000.nii.gz")
    save_png(folder / "imagesTr" / "kidney_002_0000.png", np.zeros((8, 8), np.uint8))
    exp.row(name, "imagesTr/kidney_002_0000.png", "unsupported_file_kind")
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "kidney": 1}, "numTraining": 2,
        "file_ending": ".nii.gz"}))


# ------------------------------------------------------------------ 2D: folder, COCO, captions


def _camera() -> np.ndarray:
    import skimage.data

    return skimage.data.camera()[::8, ::8]


def _retina() -> np.ndarray:
    import skimage.data

    return skimage.data.retina()[::16, ::16]


def write_image_folder(folder: Path, exp: Expected, name: str = "folder") -> None:
    from PIL import Image

    save_png(folder / "camera.png", _camera())
    save_png(folder / "retina.png", _retina())
    Image.fromarray(_camera()).save(folder / "camera.gif")
    Image.fromarray(_retina()).save(folder / "retina.webp")
    save_png(folder / f"{NON_UTF8}.png", _camera()[::-1])
    for good in ("camera.png", "retina.png", "camera.gif", "retina.webp", shown(f"{NON_UTF8}.png")):
        exp.keep(name, good)
    # hold-out kinds
    (folder / "empty.png").write_bytes(b"")
    exp.row(name, "empty.png", "empty_file")
    (folder / "text.png").write_text("I am a text file with an image name\n")
    exp.row(name, "text.png", "not_an_image")
    (folder / "random.jpg").write_bytes(np.random.default_rng(1).bytes(2000))
    exp.row(name, "random.jpg", "not_an_image")
    png_with_declared_size(folder / "bomb.png", 40_000, 40_000)
    exp.row(name, "bomb.png", "decompression_bomb")
    truncate(save_png(folder / "cut.png", _retina()), 0.5)
    exp.row(name, "cut.png", "truncated")
    # other kinds in the folder, and a labels CSV with one line that is not UTF-8
    (folder / "notes.txt").write_text("scanner notes")
    exp.row(name, "notes.txt", "unsupported_file_kind")
    (folder / "scan.dcm").write_bytes(data_file("CT_small.dcm").read_bytes())
    exp.row(name, "scan.dcm", "unsupported_file_kind")
    (folder / "labels.csv").write_bytes(b"filename,label\ncamera.png,normal\nretina.png,retinopathy\n"
                                        b"r\xe9tine.png,normal\n")
    exp.row(name, shown(os.fsdecode(b"r\xe9tine.png")), "bad_encoding")


def write_coco(folder: Path, exp: Expected, name: str = "coco") -> None:
    images = folder / "images"
    for file_name in ("camera.png", "retina.png", "dup_a.png", "dup_b.png", "listed_id.png"):
        save_png(images / file_name, _camera() if "retina" not in file_name else _retina())
    exp.keep(name, "camera.png")
    exp.keep(name, "retina.png")
    doc = {
        "images": [
            {"id": 1, "file_name": "camera.png"},
            {"id": 2, "file_name": "retina.png"},
            {"id": [3], "file_name": "listed_id.png"},
            {"id": 4, "file_name": "dup_a.png"},
            {"id": 4, "file_name": "dup_b.png"},
            {"id": 5, "file_name": "missing.png"},
        ],
        "categories": [{"id": 1, "name": "lesion"}, {"id": 2**40, "name": "huge"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10]},
            {"id": 11, "image_id": 2, "category_id": 1, "bbox": [2, 2, 5, 5], "iscrowd": "yes"},
            {"id": 12, "image_id": [1], "category_id": 1, "bbox": [2, 2, 5, 5]},
            {"id": 13, "image_id": 1, "category_id": 99, "bbox": [2, 2, 5, 5]},
            {"id": 14, "image_id": 42, "category_id": 1, "bbox": [2, 2, 5, 5]},
            {"id": 15, "image_id": 4, "category_id": 1, "bbox": [2, 2, 5, 5]},  # goes with its duplicated image
        ],
    }
    (folder / "annotations.json").write_text(json.dumps(doc))
    exp.row(name, "listed_id.png", "bad_coco_json")
    exp.row(name, "dup_a.png", "duplicate_image_id")
    exp.row(name, "dup_b.png", "duplicate_image_id")
    exp.row(name, "missing.png", "missing_file")
    exp.row(name, "annotations.json#categories[1]", "bad_category_id")
    exp.row(name, "retina.png#annotation 11", "bad_annotation")
    exp.row(name, "annotations.json#annotation 12", "unknown_image")
    exp.row(name, "camera.png#annotation 13", "unknown_category")
    exp.row(name, "annotations.json#annotation 14", "unknown_image")


def write_captions(folder: Path, exp: Expected, name: str = "captions") -> None:
    save_png(folder / "images" / "camera.png", _camera())
    save_png(folder / "images" / "retina.png", _retina())
    lines = [
        json.dumps({"image": "images/camera.png", "caption": "A grey photograph of a man with a camera."}).encode(),
        json.dumps({"image": "images/retina.png", "caption": "A colour fundus photograph."}).encode(),
        b'{"image": "images/camera.png", "caption": "caf\xe9 au lait"}',  # Latin-1, not UTF-8
        b"[" * 100_000 + b"]" * 100_000,
        b"this line is not JSON",
        json.dumps({"image": "images/missing.png", "caption": "Nothing there."}).encode(),
    ]
    (folder / "caps.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    exp.keep(name, "images/camera.png")
    exp.keep(name, "images/retina.png")
    exp.row(name, "caps.jsonl:3", "bad_encoding")
    exp.row(name, "caps.jsonl:4", "bad_json")
    exp.row(name, "caps.jsonl:5", "bad_json")
    exp.row(name, "caps.jsonl:6", "missing_file")


WRITERS = {
    "dicom": ("dicom", write_dicom, {}),
    "nifti": ("nifti", write_nifti, {"labels": "nifti/labels", "modality": "MR"}),
    "msd": ("msd", write_msd_listed, {}),
    "msd_deep": ("msd", write_msd_deep, {}),
    "msd_nolist": ("msd", write_msd_without_list, {}),
    "nnunet": ("msd", write_nnunet_v2, {}),
    "folder": ("image_folder", write_image_folder, {"labels_csv": "folder/labels.csv"}),
    "coco": ("coco", write_coco, {}),
    "captions": ("captions", write_captions, {}),
}


def write_mixed_sources(root: Path, shards: int = 2) -> tuple[Path, Expected]:
    """One source per reader and dialect under ``root``, a YAML configuration, and the expectation."""
    exp = Expected()
    sources = []
    for name, (fmt, writer, extra) in WRITERS.items():
        writer(root / name, exp, name)
        path = f"{name}/images" if name == "nifti" else name
        sources.append({"name": name, "format": fmt, "path": path, "roi": "none", "licence": "CC0-1.0", **extra})
    cfg = {"data_root": "out", "shards": shards, "salt": "mixed-salt", "max_side": 64, "context_slices": 1,
           "sources": sources}
    path = root / "sources.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path, exp
