"""Shard parts and the merged per-split dataset: what each format holds, reruns, stale files, a tampered
part, and the one category map (stable when a label appears later)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from medtrinity_assets.export import categories
from medtrinity_assets.export.build import dataset_dir, export_part, part_dir
from medtrinity_assets.export.merge import PartProblem, categories_path, merge_dataset
from medtrinity_assets.quality import near_duplicates as nd
from medtrinity_assets.quality.export_readers import check_export_splits, read_back_part, split_membership
from medtrinity_assets.quality.splits import SPLITS
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.exports import build_dataset, export_dataset, write_near_duplicates
from medtrinity_assets_tests.support.quality import image_row, sample_set, triplet_row, write_partition


@pytest.fixture()
def layout(tmp_path: Path) -> DataLayout:
    layout = DataLayout(tmp_path / "out")
    build_dataset(layout)
    return layout


def test_part_holds_one_shard_per_split_and_drops_failed_triplets(tmp_path: Path):
    layout = DataLayout(tmp_path / "out")
    images, rois, triplets = sample_set(layout, "src_a", "s00", n=4)
    failed = image_row(layout, "src_a-fail", "src_a", "sub-fail", seed=99)
    images.append(failed)
    triplets.append(triplet_row(failed, [], status="failed"))
    write_partition(layout, "src_a", "s00", images, rois, triplets)
    excl = write_near_duplicates(layout)
    res = export_part(layout, "hf", "s00", ["src_a"], excl)
    assert res.selection.exported == 4 and res.selection.failed == 1
    assert res.folder == part_dir(layout, "hf", "s00")
    ids = {split: pq.read_table(res.folder / f"{split}.parquet", columns=["id", "split"]).to_pylist()
           for split in SPLITS if (res.folder / f"{split}.parquet").is_file()}
    assert sum(len(v) for v in ids.values()) == 4
    assert all(r["split"] == split for split, rows in ids.items() for r in rows)
    manifest = json.loads((res.folder / "part.json").read_text())
    assert manifest["samples"] == {split: len(rows) for split, rows in ids.items()}
    assert manifest["labels"] == {"tumour": "finding"} and manifest["images"] == {}  # hf embeds its images
    llava = export_part(layout, "llava", "s00", ["src_a"], excl)
    assert read_back_part("llava", llava.folder, layout.root) == (4, [])
    images = json.loads((llava.folder / "part.json").read_text())["images"]
    assert len(images) == 4 and all((llava.folder / rel).stat().st_ino == layout.resolve(blob).stat().st_ino
                                    for rel, blob in images.items())  # beside the records, as links to the blobs


def test_merge_writes_per_split_files_with_the_split_in_every_record(layout: DataLayout):
    merged = export_dataset(layout)
    counts = merged.formats["hf"].samples
    assert set(counts) == set(SPLITS) and all(counts.values())
    for fmt in ("llava", "coco", "vqa", "webdataset"):
        assert merged.formats[fmt].samples == counts
    for split in SPLITS:
        llava = json.loads((dataset_dir(layout, "llava") / f"{split}.json").read_text())
        assert len(llava) == counts[split] and {r["split"] for r in llava} == {split}
        assert [r["id"] for r in llava] == sorted(r["id"] for r in llava)
        coco = json.loads((dataset_dir(layout, "coco") / f"annotations_{split}.json").read_text())
        assert {i["split"] for i in coco["images"]} == {split}
        assert (dataset_dir(layout, "vqa") / f"{split}.jsonl").is_file()
        assert sorted(dataset_dir(layout, "webdataset").glob(f"{split}-s0*-000000.tar"))
        assert sorted((dataset_dir(layout, "hf") / "data").glob(f"{split}-s0*.parquet"))
    report = check_export_splits(split_membership(layout.exports))
    assert report.ok and report.subjects_spanning_splits == 0 and set(report.records) == {"hf", "llava", "vqa", "coco",
                                                                                            "webdataset"}


@pytest.mark.slow
def test_merge_is_deterministic_and_removes_stale_files(layout: DataLayout):
    export_dataset(layout)
    sums = {fmt: (dataset_dir(layout, fmt) / "SHA256SUMS").read_text() for fmt in ("llava", "coco", "vqa", "hf")}
    (dataset_dir(layout, "llava") / "stale.json").write_text("[]")
    export_dataset(layout)
    assert not (dataset_dir(layout, "llava") / "stale.json").exists()
    assert {fmt: (dataset_dir(layout, fmt) / "SHA256SUMS").read_text() for fmt in sums} == sums


@pytest.mark.slow
def test_a_tampered_part_stops_the_merge_and_names_it(layout: DataLayout):
    export_dataset(layout)
    victim = part_dir(layout, "coco", "s01") / "train.json"
    victim.write_text(victim.read_text().replace("tumour", "tumor").replace("cyst", "cist"))
    with pytest.raises(PartProblem, match=r"coco/s01.*rerun export_coco\[s01\]"):
        merge_dataset(layout, ["s00", "s01"])


@pytest.mark.slow
def test_category_ids_are_given_once_and_never_change(layout: DataLayout, tmp_path: Path):
    export_dataset(layout)
    first = categories.load(categories_path(layout))
    assert [(c["id"], c["name"], c["kind"]) for c in first.categories] == [
        (1, "cyst", "finding"), (2, "kidney", "anatomy"), (3, "tumour", "finding")]
    # a later run brings a label that sorts first: it gets the next id, the others keep theirs
    imgs, rois, trips = sample_set(layout, "src_c", "s00", n=1, seed0=500)
    rois[0]["label"] = "abscess"
    trips = [triplet_row(imgs[0], rois)]
    write_partition(layout, "src_c", "s00", imgs, rois, trips)
    write_near_duplicates(layout)
    export_dataset(layout, sources=("src_a", "src_b", "src_c"))
    second = categories.load(categories_path(layout))
    assert second.id_of == {**first.id_of, "abscess": 4}
    coco = json.loads((dataset_dir(layout, "coco") / "annotations_train.json").read_text())
    assert {c["name"]: c["id"] for c in coco["categories"]} == second.id_of
    broken = tmp_path / "categories.json"
    broken.write_text('{"categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}')
    with pytest.raises(ValueError, match="duplicate category ids"):
        categories.load(broken)


@pytest.mark.slow
def test_dataset_folders_point_at_each_image_once(layout: DataLayout):
    merged = export_dataset(layout)
    assert merged.formats["coco"].images.linked == sum(merged.formats["coco"].samples.values())
    coco = json.loads((dataset_dir(layout, "coco") / "annotations_test.json").read_text())
    img = coco["images"][0]
    paths = [dataset_dir(layout, fmt) / img["file_name"] for fmt in ("coco", "llava", "vqa")]
    assert len({p.stat().st_ino for p in paths}) == 1 and paths[0].stat().st_nlink >= 4  # the blob and three names
    assert nd.read(layout).dedup.n_images == -1  # the exports never recount the dataset's images


def test_split_check_catches_a_subject_in_two_splits_and_a_record_in_the_wrong_file():
    from medtrinity_assets.quality.export_readers import Membership

    hf = Membership({"a": ("train", "train", "subj1"), "b": ("test", "test", "subj2")})
    assert check_export_splits({"hf": hf, "llava": Membership({"a": ("train", "train", ""), "b": ("test", "test", "")})}).ok
    moved = Membership({"a": ("train", "train", ""), "b": ("train", "test", "")})  # b written into train.json
    rep = check_export_splits({"hf": hf, "llava": moved})
    assert rep.records_in_wrong_file == ["llava: b is in the train file but says test"]
    assert rep.records_disagreeing_across_formats == ["b: ['test', 'train']"] and rep.subjects_spanning_splits == 1
    same_subject = Membership({"a": ("train", "train", "subj1"), "c": ("test", "test", "subj1")})
    assert check_export_splits({"hf": same_subject}).subjects_spanning_splits == 1


def test_linked_images_are_readable_even_when_an_old_blob_was_written_private(tmp_path: Path):
    import os
    import stat

    from medtrinity_assets.export.images import place_all

    blob = tmp_path / "blobs" / "ab" / "abc.png"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"png")
    os.chmod(blob, 0o600)  # what every file of a data root written before the umask fix looks like
    old = os.umask(0o022)
    try:
        placed = place_all({"images/ab/x.png": blob}, tmp_path / "export")
    finally:
        os.umask(old)
    dest = tmp_path / "export" / "images" / "ab" / "x.png"
    assert placed.linked == 1 and dest.stat().st_ino == blob.stat().st_ino
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644 and not [p for p in (tmp_path / "export").iterdir() if p.name.startswith(".")]
