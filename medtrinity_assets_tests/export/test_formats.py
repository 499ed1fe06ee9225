"""Each export format re-read with the library its users will use: datasets, pycocotools, webdataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtrinity_assets.export.build import export_dir, export_shard
from medtrinity_assets.export.sha256sums import verify_sha256sums
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.quality import image_row, sample_set, triplet_row, write_partition

QUALITY = {"dedup_hamming": 4, "leakage_hamming": 0}


@pytest.fixture()
def layout(tmp_path: Path) -> DataLayout:
    layout = DataLayout(tmp_path / "out")
    images, rois, triplets = sample_set(layout, "src_a", "s00", n=4)
    # one failed triplet: never exported
    failed_img = image_row(layout, "src_a-fail", "src_a", "sub-fail", seed=99)
    images.append(failed_img)
    triplets.append(triplet_row(failed_img, [], status="failed"))
    write_partition(layout, "src_a", "s00", images, rois, triplets)
    return layout


def test_hf_parquet_reads_back_with_datasets(layout: DataLayout):
    import datasets
    res = export_shard(layout, "hf", "s00", ["src_a"], QUALITY, None)
    assert res.selection.exported == 4 and res.selection.failed == 1
    files = sorted(str(p) for p in res.folder.glob("*.parquet"))
    ds = datasets.load_dataset("parquet", data_files={"train": files}, split="train",
                               cache_dir=str(layout.root / "hf_cache"))
    assert len(ds) == 4
    row = ds[0]
    assert row["image"].size == (64, 64)  # decoded to a PIL image by the Image feature
    assert row["caption"].startswith("Axial CT")
    assert row["rois"][0]["label"] == "tumour" and row["rois"][0]["mask_rle"]["size"] == [64, 64]
    assert row["attributes"]["roi_location"].startswith("left kidney")
    assert "rel_path" not in ds.column_names
    text = " ".join(str(v) for v in ds.to_pandas().drop(columns=["image"]).to_numpy().ravel())
    assert "secret_dir" not in text  # input paths never travel
    assert verify_sha256sums(res.folder).ok


def test_coco_reads_back_with_pycocotools(layout: DataLayout):
    from pycocotools.coco import COCO

    res = export_shard(layout, "coco", "s00", ["src_a"], QUALITY, None)
    coco = COCO(str(res.folder / "annotations.json"))
    assert len(coco.getImgIds()) == 4 and len(coco.getAnnIds()) == 4
    ann = coco.loadAnns(coco.getAnnIds())[0]
    mask = coco.annToMask(ann)
    img = coco.loadImgs(ann["image_id"])[0]
    assert mask.shape == (img["height"], img["width"]) and mask.sum() == ann["area"] > 0
    x, y, w, h = ann["bbox"]
    ys, xs = mask.nonzero()
    assert abs(xs.min() - x) <= 1 and abs(ys.min() - y) <= 1
    assert (res.folder / img["file_name"]).is_file()
    assert ann["origin"] == "ground_truth"


def test_webdataset_reads_back(layout: DataLayout):
    import webdataset as wds
    res = export_shard(layout, "webdataset", "s00", ["src_a"], QUALITY, None)
    tars = sorted(str(p) for p in res.folder.glob("*.tar"))
    assert tars
    samples = list(wds.WebDataset(tars, shardshuffle=False).decode("pil").to_tuple("png", "json", "txt"))
    assert len(samples) == 4
    img, meta, txt = samples[0]
    assert img.size == (64, 64) and meta["caption"] == txt and meta["rois"][0]["label"] == "tumour"


def test_llava_and_vqa_json(layout: DataLayout):
    res = export_shard(layout, "llava", "s00", ["src_a"], QUALITY, None)
    recs = json.loads((res.folder / "conversations.json").read_text())
    assert len(recs) == 4
    assert recs[0]["conversations"][0]["value"].startswith("<image>\n")
    assert (res.folder / recs[0]["image"]).is_file()
    vqa = export_shard(layout, "vqa", "s00", ["src_a"], QUALITY, None)
    pairs = [json.loads(l) for l in (vqa.folder / "vqa_pairs.jsonl").read_text().splitlines()]
    types = {p["question_type"] for p in pairs}
    assert {"modality", "organ", "side", "presence", "size", "texture"} <= types
    side_open = [p for p in pairs if p["question_type"] == "side" and p["answer_type"] == "OPEN"]
    assert side_open and all(p["answer"] == "left" for p in side_open)
    assert {p["answer"] for p in pairs if p["answer_type"] == "CLOSED"} == {"yes", "no"}


def test_rerun_is_deterministic_and_removes_stale_files(layout: DataLayout):
    a = export_shard(layout, "webdataset", "s00", ["src_a"], QUALITY, None)
    sums1 = (a.folder / "SHA256SUMS").read_text()
    (a.folder / "stale.txt").write_text("left over")
    b = export_shard(layout, "webdataset", "s00", ["src_a"], QUALITY, None)
    assert (b.folder / "SHA256SUMS").read_text() == sums1
    assert not (b.folder / "stale.txt").exists()
    assert export_dir(layout, "webdataset", "s00") == b.folder
