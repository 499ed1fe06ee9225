"""build_demo creates every folder data/sources.yaml points at, readable by the real readers, twice the same."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import warnings
from pathlib import Path

import nibabel as nib
import pytest

from medtrinity_assets.config import read_config
from medtrinity_assets.demo.build import MEDRAG_PASSAGES, build_demo
from medtrinity_assets.demo.phantom import make_phantom
from medtrinity_assets.formats.base import ItemRef, Quarantined, get_reader

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # builds the whole demo (seconds of CPU)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    dest = tmp_path_factory.mktemp("data") / "demo"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the DICOM phantom writer may not be there yet
        summary = build_demo(dest, n_phantoms=4)
    return dest, summary


def test_every_registry_path_exists(demo):
    dest, _ = demo
    cfg = read_config(REPO / "data" / "sources.yaml")  # the demo was built elsewhere: the model, not the files
    for src in cfg.sources:
        rel = src.path.relative_to((REPO / "data" / "demo").resolve())
        assert (dest / rel).exists(), f"{src.name}: {rel} not built"
        for extra in (src.labels, src.labels_csv):
            if extra is not None:
                assert (dest / extra.relative_to((REPO / "data" / "demo").resolve())).exists()
    assert (dest / "medrag_demo.jsonl").is_file() and (dest / "eval_hashes.txt").is_file()


def test_rebuild_gives_identical_bytes(demo):
    dest, _ = demo
    before = _digests(dest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_demo(dest, n_phantoms=4)
    after = _digests(dest)
    assert after.keys() == before.keys()
    # the DICOM writer (its own module) stamps SEG/RTSTRUCT creation times; everything else is byte-stable
    unstable = {k for k in before if k.startswith("phantom_dicom/") and before[k] != after[k]}
    assert {k: v for k, v in after.items() if k not in unstable} == {k: v for k, v in before.items() if k not in unstable}
    assert all(k.endswith(".dcm") for k in unstable)
    assert not any(p.name.startswith(".") for p in dest.iterdir())  # no temporary folders left


def test_phantom_ct_stores_both_orientations_and_matching_truth(demo):
    dest, _ = demo
    folder = dest / "phantom_ct"
    codes = {nib.aff2axcodes(nib.load(str(p)).affine) for p in (folder / "images").glob("*.nii.gz")}
    assert codes == {("L", "P", "S"), ("R", "A", "S")}
    rows = list(csv.DictReader((folder / "labels.csv").open()))
    truth = json.loads((folder / "truth.json").read_text())
    assert [r["filename"] for r in rows] == [Path(t["file"]).name for t in truth]
    for row, t in zip(rows, truth):
        p = make_phantom(t["seed"], t["index"])
        assert row["findings"].split(";") == [les["name"] for les in p.lesions]
        assert [les["side"] for les in t["lesions"]] == [les["side"] for les in p.lesions]


@pytest.mark.parametrize(
    "name,fmt,path,kw",
    [
        ("phantom_ct", "nifti", "phantom_ct/images", {"labels": "phantom_ct/labels", "labels_csv": "phantom_ct/labels.csv"}),
        ("phantom_msd", "msd", "phantom_msd", {}),
        ("skimage_folder", "image_folder", "skimage_folder", {"labels_csv": "skimage_folder/labels.csv"}),
        ("coco_boxes", "coco", "coco_boxes", {}),
        ("captions_demo", "captions", "captions", {}),
        ("brain_mr", "nifti", "brain_mr", {}),
        ("phantom_dicom", "dicom", "phantom_dicom", {}),
    ],
)
def test_readers_accept_every_demo_item(demo, name, fmt, path, kw):
    from medtrinity_assets.config import SourceSpec

    dest, _ = demo
    spec = SourceSpec(name=name, format=fmt, path=dest / path, modality="CT" if "phantom" in name else None,
                      **{k: dest / v for k, v in kw.items()})
    results = list(get_reader(fmt).scan(spec))
    assert results and not [r for r in results if isinstance(r, Quarantined)]
    if fmt == "coco":
        refs = [r for r in results if isinstance(r, ItemRef)]
        item = get_reader(fmt).load(spec, refs[0])
        assert item.boxes, "every COCO demo image carries at least one lesion box"


def test_side_files(demo):
    dest, summary = demo
    lines = [json.loads(x) for x in (dest / "medrag_demo.jsonl").read_text().splitlines()]
    assert len(lines) == len(MEDRAG_PASSAGES) >= 20
    assert all(set(x) == {"id", "title", "content"} for x in lines)
    hashes = (dest / "eval_hashes.txt").read_text().split()
    assert hashes == summary["eval_hashes"] and len(hashes) == 2
    assert all(re.fullmatch(r"[0-9a-f]{16}", h) for h in hashes)
    msd = json.loads((dest / "phantom_msd" / "dataset.json").read_text())
    assert msd["labels"]["10"] == "liver tumour" and len(msd["training"]) == msd["numTraining"]
    captions = [json.loads(x) for x in (dest / "captions" / "images.jsonl").read_text().splitlines()]
    assert all((dest / "captions" / c["image"]).is_file() and c["caption"] for c in captions)
    assert len(list((dest / "pydicom_real").rglob("*.dcm"))) == 8
