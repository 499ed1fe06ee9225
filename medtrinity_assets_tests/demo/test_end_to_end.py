"""The main job, as a new user runs it: `medtrinity demo` builds every demo source and runs the whole graph.

This is the one test that crosses every stage on every source kind at once (DICOM with SEG/RTSTRUCT,
NIfTI stored RAS and LPS, MSD, image folder, COCO, captions, expert-model ROIs, two corpora), so a
stage that is right alone but wrong in company (a quoted caption failing the consistency gate, say)
fails here.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "medtrinity"


@pytest.mark.slow
def test_demo_runs_every_stage_without_a_failed_run(tmp_path):
    for name in ("sources.yaml", "models.yaml"):
        shutil.copy(REPO / "data" / name, tmp_path / name)
    (tmp_path / "knowledge").symlink_to(REPO / "data" / "knowledge")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "MEDTRINITY_CONFIG": str(tmp_path / "sources.yaml")}
    out = subprocess.run([str(BIN), "demo", "--config", str(tmp_path / "sources.yaml")], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=3600)  # hang guard only
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads(out.stdout[out.stdout.index("\n{") + 1:out.stdout.index("\n}") + 2])
    assert summary["failed_runs"] == []
    assert set(summary["triplets_by_status"]) == {"ok"}
    assert {"ground_truth", "expert:ct_anatomy@2.0", "expert:phantom_seg@1.0"} <= set(summary["rois_by_origin"])
    assert any(o.startswith("expert:lesion_seg@") for o in summary["rois_by_origin"])
    assert {"CT", "MR", "CR", "US"} <= set(summary["images_by_modality"])

    data_root = tmp_path / "out"
    for fmt in ("hf", "llava", "webdataset", "coco", "vqa"):
        folder = data_root / "exports" / fmt
        assert (folder / "SHA256SUMS").is_file(), f"{fmt} export not sealed"
    for split in ("train", "validation", "test"):
        assert json.loads((data_root / "exports" / "llava" / f"{split}.json").read_text()), f"llava {split} is empty"
        assert (data_root / "exports" / "coco" / f"annotations_{split}.json").is_file()
    card = (data_root / "card" / "README.md").read_text()
    assert "## Sources and licences" in card and "plots/by_modality.png" in card
    assert card == (data_root / "exports" / "hf" / "README.md").read_text()
    assert (data_root / "card" / "plots" / "by_modality.png").stat().st_size > 1000
