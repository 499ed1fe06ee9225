"""End to end on the phantom through the real upstream code: NIfTI ingest -> ROI facts -> grounded triplets.

The triplets are compared with the phantom's truth (truth.json written beside the volumes): modality,
organ, patient side of every lesion (volumes stored both LPS and RAS), and size class on the
lesion's section in millimetres.
"""

from __future__ import annotations

import json
import re

import pytest

from medtrinity_assets.generation.backends.grounded import GroundedBackend
from medtrinity_assets.generation.inputs import assemble
from medtrinity_assets.generation.prompt import load_template
from medtrinity_assets.generation.run import generate_rows
from medtrinity_assets.quality import description_metrics as M
from medtrinity_assets.quality.consistency import score_triplet

OPPOSITE = {"left": "right", "right": "left"}


@pytest.mark.slow
def test_phantom_pipeline_triplets_match_truth(tmp_path):
    from medtrinity_assets.config import load_config
    from medtrinity_assets.deid.paths import lookup
    from medtrinity_assets.demo.build import _phantom_ct
    from medtrinity_assets.demo.phantom import LABEL_NAMES
    from medtrinity_assets.ingest import build_images, build_manifest
    from medtrinity_assets.roi.build import RoiSettings, describe_partition
    from medtrinity_assets.storage import DataLayout

    folder = tmp_path / "phantom_ct"
    _phantom_ct(folder, 2)  # index 0 stored LPS, index 1 stored RAS
    names = "\n".join(f"      {k}: {v}" for k, v in LABEL_NAMES.items())
    cfg_path = tmp_path / "sources.yaml"
    cfg_path.write_text(
        f"data_root: {tmp_path / 'out'}\nshards: 1\nsalt: t\ncontext_slices: 0\nsources:\n"
        f"  - name: phantom_ct\n    format: nifti\n    path: {folder / 'images'}\n    labels: {folder / 'labels'}\n"
        f"    labels_csv: {folder / 'labels.csv'}\n    modality: CT\n    organ: abdomen\n    licence: CC0-1.0\n"
        f"    label_names:\n{names}\n"
    )
    cfg = load_config(cfg_path)
    layout = DataLayout(cfg.data_root)
    source = cfg.source("phantom_ct")
    build_manifest(source, salt="t", shards=1, layout=layout)  # writes the private file-key -> path table
    images = build_images(cfg, source, "s00", layout, salt="t").table
    assert images.num_rows > 0
    image_rows = images.to_pylist()
    paths = lookup(layout.root, [r["rel_path"] for r in image_rows])
    roi_rows, _stats = describe_partition(image_rows, layout, "ground_truth", [], RoiSettings.from_config(cfg))
    facts = assemble(image_rows, roi_rows, [], {})
    table, stats, _ = generate_rows(list(zip(facts, image_rows)), GroundedBackend(seed=0), load_template(), lambda p: b"", "s00")
    assert stats.failed == 0

    truth = {t["file"].split("/")[-1]: t for t in json.loads((folder / "truth.json").read_text())}
    by_id = {f.sample_id: f for f in facts}
    checked = sized = 0
    for row, img in zip(table.to_pylist(), image_rows):
        f = by_id[row["sample_id"]]
        a = row["attributes"]
        assert re.search(r"\bCT\b|computed tomography", a["modality"]) and row["body_region"] in a["organ"]
        assert score_triplet(row["description"], row["attributes"], f.scorer_facts(),
                             [c["text"] for c in json.loads(row["clauses_json"]) if c["source"].startswith("passage:")]) == []
        assert M.pipeline_phrases(row["description"]) == []
        vol = truth[paths[img["rel_path"]].split("/")[-1]]
        z = img["slice_index"]
        clauses = json.loads(row["clauses_json"])
        for roi in f.findings:
            les = next((t for t in vol["lesions"] if t["name"] == roi.label), None)
            if les is None or str(z) not in les["slice_areas_px"]:
                continue
            [text] = [c["text"] for c in clauses if c["field"] == "roi_location" and c["source"].startswith(f"roi:{roi.roi_id}.")] or [""]
            if not text:  # beyond the three largest findings of the slice: counted, not described
                continue
            assert f"patient's {les['side']}" in text, (vol["orientation"], les, text)
            assert OPPOSITE[les["side"]] not in text
            checked += 1
            # the stated axes against the area-equivalent diameter of the lesion's section on this slice
            true_d = 2.0 * (les["slice_areas_px"][str(z)] * vol["spacing"][1] * vol["spacing"][2] / 3.141592653589793) ** 0.5
            long_mm, short_mm = M.stated_size_mm(text)
            if true_d >= 5.0:  # a section of a few pixels has no reliable diameter
                assert abs((long_mm * short_mm) ** 0.5 - true_d) / true_d < 0.2, (les["name"], text, true_d)
                sized += 1
    print(f"lesion clauses checked against truth: {checked} (side), {sized} (size in mm)")
    assert checked >= 4 and sized >= 4, (checked, sized)
