"""MsdReader on a small Decathlon layout built with MONAI's synthetic image+label generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medtrinity_assets.formats.base import get_reader
from medtrinity_assets.formats.msd import MsdReader, channel_modality
from medtrinity_assets_tests.support.formats import lps_affine, ras_affine, save_nifti, source, split


@pytest.fixture(scope="module")
def msd_root(tmp_path_factory) -> Path:
    from monai.data.synthetic import create_test_image_3d

    root = tmp_path_factory.mktemp("Task99_Liver")
    rng = np.random.RandomState(7)
    training = []
    for i in range(3):
        image, label = create_test_image_3d(32, 28, 20, num_objs=3, rad_max=6, rad_min=3, num_seg_classes=2,
                                            noise_max=0.1, random_state=rng)
        hu = (image * 200.0 - 50.0).astype(np.float32)
        affine = ras_affine((0.8, 0.8, 2.0)) if i % 2 == 0 else lps_affine((0.8, 0.8, 2.0))
        save_nifti(root / "imagesTr" / f"liver_{i:03d}.nii.gz", hu, affine)
        save_nifti(root / "labelsTr" / f"liver_{i:03d}.nii.gz", label.astype(np.uint8), affine)
        training.append({"image": f"./imagesTr/liver_{i:03d}.nii.gz", "label": f"./labelsTr/liver_{i:03d}.nii.gz"})
    # a two-channel image (MR-style: channels on the 4th axis)
    two = np.stack([np.full((16, 16, 8), 1.0, np.float32), np.full((16, 16, 8), 2.0, np.float32)], axis=-1)
    save_nifti(root / "imagesTs" / "liver_100.nii.gz", two, ras_affine())
    (root / "imagesTr" / "._liver_000.nii.gz").write_bytes(b"\x00\x05\x16\x07 macOS junk")
    doc = {
        "name": "Liver",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "liver", "2": "cancer"},
        "numTraining": len(training) + 2,
        "training": training + [
            {"image": "./imagesTr/liver_404.nii.gz", "label": "./labelsTr/liver_404.nii.gz"},
            {"image": "../../outside.nii.gz", "label": "./labelsTr/liver_000.nii.gz"},
        ],
        "test": ["./imagesTs/liver_100.nii.gz"],
    }
    (root / "dataset.json").write_text(json.dumps(doc))
    return root


@pytest.mark.slow
def test_msd_layout_scans_and_loads(msd_root):
    src = source("msd", "msd", msd_root, organ="abdomen")
    reader = get_reader("msd")
    assert isinstance(reader, MsdReader)
    refs, bad = split(reader.scan(src))
    assert [r.rel_path for r in refs] == ["imagesTr/liver_000.nii.gz", "imagesTr/liver_001.nii.gz",
                                          "imagesTr/liver_002.nii.gz", "imagesTs/liver_100.nii.gz"]
    assert {q.rel_path: q.error_class for q in bad} == {"imagesTr/liver_404.nii.gz": "missing_file",
                                                       "../../outside.nii.gz": "path_outside_source"}
    assert all("dataset.json training[" in q.reason for q in bad)
    assert [r.subject_id for r in refs][:2] == ["liver_000", "liver_001"]
    assert all(r.modality == "CT" for r in refs) and refs[0].n_frames == 20

    items = [reader.load(src, r) for r in refs]
    first = items[0]
    assert first.pixels.shape == (20, 28, 32) and first.label_map.shape == first.pixels.shape
    assert first.label_names == {1: "liver", 2: "cancer"}
    assert first.modality == "CT" and first.organ == "abdomen" and first.meta["msd_task"] == "Liver"
    assert first.meta["msd_split"] == "training" and first.spacing == pytest.approx((2.0, 0.8, 0.8))
    assert (first.col_toward, first.row_toward, first.slice_toward) == ("L", "P", "S")
    # the synthetic objects are brighter than the background, and the label map marks them
    assert first.pixels[first.label_map > 0].mean() > first.pixels[first.label_map == 0].mean() + 50
    assert set(np.unique(first.label_map)) <= {0, 1}
    test_item = items[3]
    assert test_item.label_map is None and test_item.pixels.shape == (8, 16, 16)
    assert np.all(test_item.pixels == 1.0)  # channel 0, not channel 1
    assert "channel 0 (CT) of 2" in test_item.meta["note"]


def test_missing_or_bad_dataset_json(tmp_path):
    refs, bad = split(MsdReader().scan(source("m", "msd", tmp_path)))
    assert refs == [] and bad[0].error_class == "missing_dataset_json"
    (tmp_path / "dataset.json").write_text("{not json")
    refs, bad = split(MsdReader().scan(source("m", "msd", tmp_path)))
    assert bad[0].error_class == "bad_dataset_json"


def test_channel_names_map_to_modalities():
    assert [channel_modality(n) for n in ("CT", "FLAIR", "T1w", "t1gd", "T2w", "MRI", "ADC", "PET", "weird")] == [
        "CT", "MR", "MR", "MR", "MR", "MR", "MR", "PT", "OT"]


def test_nnunet_v2_layout_without_a_list_is_read(tmp_path):
    """nnU-Net v2: no 'training' list, channel-suffixed images, labels named name -> value."""
    root = tmp_path / "Dataset042_Kidney"
    vol = np.random.default_rng(0).normal(0, 40, (10, 9, 6)).astype(np.float32)
    lab = np.zeros((10, 9, 6), np.uint8)
    lab[2:5, 2:5, 1:3] = 2
    save_nifti(root / "imagesTr" / "kid_007_0000.nii.gz", vol, ras_affine())
    save_nifti(root / "imagesTr" / "kid_007_0001.nii.gz", vol * 2, ras_affine())  # a second channel
    save_nifti(root / "labelsTr" / "kid_007.nii.gz", lab, ras_affine())
    save_nifti(root / "imagesTs" / "kid_100_0000.nii.gz", vol, ras_affine())
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT", "1": "CT"}, "labels": {"background": 0, "kidney": 1, "tumour": 2,
                                                             "kidney_and_tumour": [1, 2]},
        "numTraining": 1, "file_ending": ".nii.gz"}))
    src = source("kid", "msd", root)
    refs, bad = split(MsdReader().scan(src))
    assert bad == []
    assert sorted((r.rel_path, r.subject_id) for r in refs) == [("imagesTr/kid_007_0000.nii.gz", "kid_007"),
                                                               ("imagesTs/kid_100_0000.nii.gz", "kid_100")]
    train = next(r for r in refs if r.locator["split"] == "training")
    item = MsdReader().load(src, train)
    assert item.modality == "CT" and item.label_map is not None and int(item.label_map.max()) == 2
    assert item.label_names == {1: "kidney", 2: "tumour"}  # the region (a list of values) is not a label


def test_dataset_json_without_list_nor_folders_says_so(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "Empty", "modality": {"0": "CT"}}))
    refs, bad = split(MsdReader().scan(source("e", "msd", tmp_path)))
    assert refs == [] and [b.error_class for b in bad] == ["no_cases"]
