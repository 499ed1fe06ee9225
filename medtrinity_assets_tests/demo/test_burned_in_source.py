"""The demo's burned-in source labels each screen capture by what its picture shows (training text follows the labels)."""

from __future__ import annotations

import csv

from medtrinity_assets.demo.burned_in import BACKGROUNDS, make_set, write_source


def test_every_screen_capture_is_labelled_by_its_picture(tmp_path):
    images = write_source(tmp_path)
    rows = list(csv.DictReader((tmp_path / "labels.csv").open()))
    assert len(rows) == len(images) == 12
    for row, image in zip(rows, images):
        assert image.background in ("ct", "us", "skimage")  # the noisy 'film' gradient shows no anatomy
        if image.background == "ct":
            assert (row["modality"], row["organ"]) == ("CT", "abdomen")
        elif image.background == "us":
            assert row["modality"] == "US"
        else:  # scikit-image's retina (colour) or Shepp-Logan head phantom (grey)
            assert (row["modality"], row["organ"]) == (("FUNDUS", "eye") if image.image.ndim == 3 else ("CT", "head"))
    assert {r["modality"] for r in rows} - {"CT", "US", "FUNDUS"} == set()


def test_the_benchmark_set_keeps_every_background():
    # bench_deid's set draws from all four backgrounds, as before the demo stopped using the film one
    assert {s.background for s in make_set(20, 10, seed=14)} == set(BACKGROUNDS)
