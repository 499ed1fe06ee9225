"""Every export loaded per split with the library its users use — `datasets` (and the Hub card parser),
`webdataset`, `pycocotools`, the LLaVA JSON schema, the VQA scorer — and nothing trained: no subject in two
splits in any format, one category map across files, images stored once, files readable by the group and
others under umask 022."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
from collections import defaultdict

import jsonschema
import pytest

from medtrinity_assets.config import load_config
from medtrinity_assets.export.dataset_card import build_dataset_card
from medtrinity_assets.export.vqa import MULTIPLE_CHOICE, SHORT_ANSWER
from medtrinity_assets.export.vqa_eval import evaluate, load_ground_truth, load_predictions
from medtrinity_assets.quality.splits import SPLITS
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.exports import build_dataset, export_dataset
from medtrinity_assets_tests.support.quality import write_config

# LLaVA's training data: a list of records, the image token opening the first human turn, turns alternating
LLAVA_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["id", "image", "conversations"],
        "properties": {
            "id": {"type": "string"},
            "image": {"type": "string", "pattern": r"^[^/].*\.png$"},
            "conversations": {
                "type": "array", "minItems": 2,
                "prefixItems": [{"type": "object", "properties": {"from": {"const": "human"},
                                                                  "value": {"type": "string", "pattern": "^<image>\n"}}},
                                {"type": "object", "properties": {"from": {"const": "gpt"}}}],
                "items": {"type": "object", "required": ["from", "value"],
                          "properties": {"from": {"enum": ["human", "gpt"]}, "value": {"type": "string", "minLength": 1}}},
            },
        },
    },
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exports")
    old = os.umask(0o022)
    try:
        cfg_path = write_config(tmp, ["src_a", "src_b"])
        layout = DataLayout(tmp / "out")
        subject_of = build_dataset(layout)
        merged = export_dataset(layout)
        card = build_dataset_card(load_config(cfg_path), layout, identifiers=[])
    finally:
        os.umask(old)
    return layout, subject_of, merged, card


def _subjects_by_split(sample_split: dict[str, str], subject_of: dict[str, str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for sid, split in sample_split.items():
        out[subject_of[sid]].add(split)
    return out


def _no_subject_in_two_splits(sample_split: dict[str, str], subject_of: dict[str, str], fmt: str) -> None:
    spanning = {s: sp for s, sp in _subjects_by_split(sample_split, subject_of).items() if len(sp) > 1}
    assert not spanning, f"{fmt}: subjects in two splits: {spanning}"


@pytest.mark.slow
def test_exports_load_with_their_users_libraries(dataset):
    import datasets
    import webdataset as wds
    from huggingface_hub import DatasetCard
    from pycocotools.coco import COCO

    layout, subject_of, merged, card = dataset
    exports = layout.exports
    by_format: dict[str, dict[str, str]] = defaultdict(dict)  # format -> sample id -> split

    # Hugging Face: the folder as it would be pushed; the card's front matter parses and names the split files
    hub = DatasetCard.load(exports / "hf" / "README.md")
    assert hub.data.license == "cc0-1.0"  # both test sources are CC0
    assert {f["split"] for f in hub.data.configs[0]["data_files"]} == set(SPLITS)
    ds = datasets.load_dataset(str(exports / "hf"), cache_dir=str(layout.root / "hf_cache"))
    assert set(ds) == set(SPLITS)
    declared = datasets.Features._from_yaml_list(hub.data.dataset_info["features"])
    for split in SPLITS:
        assert ds[split].features == declared
        assert len(ds[split]) == merged.formats["hf"].samples[split] > 0
        for row in ds[split]:
            assert row["split"] == split and row["image"].size == (row["width"], row["height"])
            by_format["hf"][row["id"]] = split
        assert {s["num_examples"] for s in hub.data.dataset_info["splits"] if s["name"] == split} == {len(ds[split])}

    # LLaVA: the schema its training script reads; every image resolves from the file's folder
    for split in SPLITS:
        path = exports / "llava" / f"{split}.json"
        records = json.loads(path.read_text())
        jsonschema.validate(records, LLAVA_SCHEMA)
        for r in records:
            assert (path.parent / r["image"]).is_file() and r["split"] == split
            by_format["llava"][r["id"]] = split

    # VQA: LLaVA instruction data and a LLaVA question file the scorer reads back
    for split in SPLITS:
        conv = json.loads((exports / "vqa" / f"{split}_llava.json").read_text())
        jsonschema.validate(conv, LLAVA_SCHEMA)
        for r in conv:
            by_format["vqa"][r["id"]] = split
            assert all(t["value"].endswith((SHORT_ANSWER, MULTIPLE_CHOICE)) for t in r["conversations"][::2])
        questions = [json.loads(line) for line in (exports / "vqa" / f"{split}.jsonl").read_text().splitlines()]
        assert questions and all((exports / "vqa" / q["image"]).is_file() and q["split"] == split for q in questions)
        truth = load_ground_truth(exports / "vqa" / f"{split}.jsonl", "medtrinity")
        preds_path = layout.root / f"perfect_{split}.jsonl"
        preds_path.write_text("".join(json.dumps({"question_id": q["question_id"], "text": q["answer"]}) + "\n"
                                      for q in questions))
        report = evaluate(truth, load_predictions(preds_path))
        assert report["closed_accuracy"] == 1.0 and report["open_recall"] == 1.0 and report["missing_predictions"] == 0

    # COCO: pycocotools per split; ids unique across files and one category list, so the files concatenate
    cats_file = json.loads((exports / "categories.json").read_text())["categories"]
    image_ids, ann_ids, cat_lists = set(), set(), []
    combined = {"images": [], "annotations": [], "categories": None}
    for split in SPLITS:
        path = exports / "coco" / f"annotations_{split}.json"
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(path))
        for img in coco.loadImgs(coco.getImgIds()):
            assert (path.parent / img["file_name"]).is_file() and img["split"] == split
            by_format["coco"][img["sample_id"]] = split
        for ann in coco.loadAnns(coco.getAnnIds()):
            assert coco.annToMask(ann).sum() > 0
        assert not image_ids & set(coco.getImgIds()) and not ann_ids & set(coco.getAnnIds())
        image_ids |= set(coco.getImgIds())
        ann_ids |= set(coco.getAnnIds())
        raw = json.loads(path.read_text())
        cat_lists.append(raw["categories"])
        combined["images"] += raw["images"]
        combined["annotations"] += raw["annotations"]
        combined["categories"] = raw["categories"]
    assert all(c == cat_lists[0] for c in cat_lists)
    assert [(c["id"], c["name"]) for c in cat_lists[0]] == [(c["id"], c["name"]) for c in cats_file]
    assert {c["name"] for c in cats_file} == {"cyst", "kidney", "tumour"}  # each shard alone knows only two
    merged_path = layout.root / "coco_all.json"
    merged_path.write_text(json.dumps(combined))
    with contextlib.redirect_stdout(io.StringIO()):
        everything = COCO(str(merged_path))  # merging needs no remapping
    assert len(everything.getImgIds()) == sum(merged.formats["coco"].samples.values())

    # WebDataset: the tars of one split stream with webdataset
    for split in SPLITS:
        tars = sorted(str(p) for p in (exports / "webdataset").glob(f"{split}-*.tar"))
        for img, meta, txt in wds.WebDataset(tars, shardshuffle=False).decode("pil").to_tuple("png", "json", "txt"):
            assert meta["split"] == split and meta["caption"] == txt and img.size == (meta["width"], meta["height"])
            by_format["webdataset"][meta["id"]] = split

    # one subject, one split, in every format; every format agrees on every sample's split
    assert set(by_format) == {"hf", "llava", "vqa", "coco", "webdataset"}
    for fmt, sample_split in by_format.items():
        _no_subject_in_two_splits(sample_split, subject_of, fmt)
        assert sample_split == by_format["hf"], f"{fmt} splits samples differently from hf"
    assert card.quality_numbers["subjects_spanning_splits"] == 0


@pytest.mark.slow
def test_files_are_readable_by_others_and_images_stored_once(dataset):
    layout, _, merged, _ = dataset
    for path in [layout.exports, *layout.exports.rglob("*"), layout.card, *layout.card.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        wanted = 0o755 if path.is_dir() else 0o644
        assert mode == wanted, f"{path} is {oct(mode)}"
    llava = json.loads((layout.exports / "llava" / "train.json").read_text())
    for r in llava:
        inodes = {(layout.exports / fmt / r["image"]).stat().st_ino for fmt in ("llava", "vqa", "coco")}
        assert len(inodes) == 1  # one file on disk, three names
    blobs = {p.stat().st_ino for p in layout.blobs.rglob("*.png")}
    assert all((layout.exports / "llava" / r["image"]).stat().st_ino in blobs for r in llava)
    assert merged.formats["llava"].images.copied == 0
