"""The dataset-wide exclusions are computed once and read back from the near_duplicates tables unchanged."""

from pathlib import Path

import pytest

from medtrinity_assets.config import QualitySection
from medtrinity_assets.quality import near_duplicates as nd
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.exports import write_near_duplicates
from medtrinity_assets_tests.support.quality import image_row, make_png, sample_set, write_partition


def test_tables_read_back_as_computed(tmp_path: Path):
    layout = DataLayout(tmp_path / "out")
    with pytest.raises(nd.NotMaterialised, match="materialise the near_duplicates asset"):
        nd.read(layout)
    imgs, rois, trips = sample_set(layout, "src_a", "s00", n=3)
    imgs.append(image_row(layout, "src_b-dup", "src_b", "sub-other", png=make_png(1)))  # a copy of src_a-001
    write_partition(layout, "src_a", "s00", imgs, rois, trips)
    eval_file = tmp_path / "eval.txt"
    eval_file.write_text(imgs[2]["phash"] + "\n")
    computed = nd.compute(nd.image_index(layout), [int(imgs[2]["phash"], 16)], QualitySection(leakage_hamming=0), root=layout.root)
    read = write_near_duplicates(layout, QualitySection(leakage_hamming=0), eval_file)
    assert read.dedup.groups == computed.dedup.groups and read.dedup.groups
    assert read.dedup.representative_of() == computed.dedup.representative_of() == {"src_a-001": "src_a-001",
                                                                                   "src_b-dup": "src_a-001"}
    assert read.group_members() == computed.group_members()
    assert read.leaked == computed.leaked == {"src_a-002"}
