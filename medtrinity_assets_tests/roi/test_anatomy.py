"""The built-in CT expert against the phantom's organ truth, and hand-checked real CT slices."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medtrinity_assets.demo.phantom import ORGAN_LABELS, make_phantom
from medtrinity_assets.roi.builtin import ct


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def test_ct_expert_finds_phantom_organs():
    scores: dict[str, list[float]] = {}
    for idx in (0, 1, 2):
        ph = make_phantom(5, idx)
        for z in (8, 14, 20, 38, 44):
            lab = ph.label_map[z]
            found = ct.analyse(ph.volume_hu[z], ph.spacing[1], "abdomen").masks
            assert "body" in found and found["body"].mean() > 0.3
            for value, name in ORGAN_LABELS.items():
                if name == "spleen":  # not looked for: no intensity/position rule separates it reliably
                    continue
                truth = lab == value
                min_mm2 = 1500 if name == "liver" else 300  # the expert's own minimum sizes: tips are not looked for
                if truth.sum() * ph.spacing[1] * ph.spacing[2] < min_mm2:
                    continue
                # lesions are carved out of their organ in the label map; the organ includes them
                truth = ndimage.binary_fill_holes(truth | ((lab >= 10) & ndimage.binary_dilation(truth, iterations=2)))
                scores.setdefault(name, []).append(_dice(found.get(name, np.zeros_like(truth)), truth))
    means = {k: float(np.mean(v)) for k, v in scores.items()}
    print("phantom Dice", means)
    assert set(means) >= {"lung", "bone", "liver", "kidney"}, means
    assert all(m >= 0.75 for m in means.values()), means


def test_phantom_levels_lung_bases_of_an_abdominal_series_are_lower_chest():
    ph = make_phantom(0, 3)
    regions = {z: ct.analyse(ph.volume_hu[z], ph.spacing[1], "abdomen").region for z in (5, 15, 25, 40, 46)}
    assert all(regions[z].region == "abdomen" for z in (5, 15, 25)), regions
    assert all(regions[z].region == "chest" and regions[z].detail == "lower chest" for z in (40, 46)), regions


def test_body_frame_keeps_the_image_grid_on_any_size():
    rng = np.random.default_rng(0)
    for shape, px in (((509, 511), 0.75), ((77, 130), 0.4), ((64, 64), 1.5)):
        values = np.full(shape, -1000.0, np.float32)
        yy, xx = np.ogrid[: shape[0], : shape[1]]
        body = ((yy - shape[0] / 2) / (0.4 * shape[0])) ** 2 + ((xx - shape[1] / 2) / (0.4 * shape[1])) ** 2 <= 1
        values[body] = 40 + rng.normal(0, 10, int(body.sum()))
        found = ct.body_mask(values, px, grid_mm=3.0)
        assert found.shape == shape
        assert 2 * (found & body).sum() / (found.sum() + body.sum()) > 0.9
