"""Built-in experts on real images that ship in packages, against regions checked by hand.

Each expected region was drawn by looking at the image as ingest stores it (same grid, same
orientation): polygons traced on a 50-pixel grid overlay, circles and rectangles measured the same
way. Scores are Dice (or pixel accuracy) per modality; the numbers printed here are the ones in the
experts note. Images are read by the project's own readers (``support.real_images``).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import disk as draw_disk
from skimage.draw import polygon

from medtrinity_assets.roi.builtin import ExpertInput, brain, chest_xray, ct, field_of_view
from medtrinity_assets_tests.support.real_images import dicom_slices, nifti_slices, nilearn_mni, skimage_image


def poly(points: list[tuple[int, int]], shape) -> np.ndarray:
    """Mask of a polygon given as (x, y) image points."""
    m = np.zeros(shape, bool)
    rr, cc = polygon([p[1] for p in points], [p[0] for p in points], shape)
    m[rr, cc] = True
    return m


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def expert_input(s, organ: str | None = None, physical: bool = True) -> ExpertInput:
    return ExpertInput(s.values, s.modality, s.organ if organ is None else organ, s.px_mm, bool(np.isfinite(s.spacing[0])),
                       physical, s.col_toward, s.row_toward)


def rgb_input(rgb: np.ndarray, modality: str) -> ExpertInput:
    lum = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return ExpertInput(lum, modality, "", 1.0, False, False, "", "", rgb)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    return lambda name: dicom_slices(name, tmp)[0]


# ---- CT --------------------------------------------------------------------------------------------

HEAD_693 = [(265, 95), (320, 100), (360, 130), (390, 180), (405, 240), (408, 300), (400, 360), (375, 410), (330, 440),
            (270, 447), (210, 440), (170, 410), (145, 360), (133, 300), (135, 240), (150, 180), (185, 125), (225, 100)]
INTRACRANIAL_693 = [(260, 135), (310, 140), (345, 165), (370, 210), (383, 260), (385, 310), (375, 360), (350, 395),
                    (310, 413), (265, 417), (220, 410), (185, 390), (162, 350), (153, 300), (155, 250), (165, 200),
                    (190, 160), (225, 140)]
# CT_small (128 x 128, posterior chest): both lungs cut by the field of view, the thoracic vertebra with a rib
RIGHT_LUNG_CT_SMALL = [(0, 0), (46, 0), (44, 8), (38, 20), (33, 33), (25, 45), (15, 55), (0, 63)]
LEFT_LUNG_CT_SMALL = [(110, 0), (128, 0), (128, 67), (117, 63), (100, 50), (88, 33), (95, 28), (106, 17)]
VERTEBRA_CT_SMALL = [(50, 7), (63, 7), (73, 18), (78, 33), (80, 48), (85, 60), (80, 67), (70, 70), (60, 82), (55, 73),
                     (42, 67), (32, 63), (25, 63), (20, 73), (15, 73), (12, 62), (25, 55), (40, 50), (42, 33), (45, 17)]


def test_ct_head_693_body_and_region(real):
    s = real("693_J2KR.dcm")
    r = ct.read(expert_input(s))
    assert r.region is not None and r.region.region == "head"
    d = dice(r.masks["body"], poly(HEAD_693, s.values.shape))
    print(f"CT 693 head: body Dice {d:.3f}")
    assert d >= 0.93
    assert "lung" not in r.masks and "liver" not in r.masks  # the head holder and the skull are not organs
    assert not (r.masks["body"][:, :60].any() or r.masks["body"][:, -40:].any())  # head holder detached


def test_ct_skull_base_is_head_with_air_in_the_sinuses(real):
    s = real("J2K_pixelrep_mismatch.dcm")
    r = ct.read(expert_input(s))
    assert r.region is not None and r.region.region == "head"
    assert "lung" not in r.masks and r.masks["air"].sum() > 1000 and r.masks["bone"].sum() > 10000
    ys, _ = np.nonzero(r.masks["air"])
    assert ys.min() < 120  # the frontal/ethmoid sinuses at the front (top) of the slice are air


def test_ct_small_cropped_chest_lungs_and_vertebra(real):
    s = real("CT_small.dcm")
    r = ct.read(expert_input(s))
    assert r.region is not None and r.region.region == "chest"
    shape = s.values.shape
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    canal = (yy - 52) ** 2 + (xx - 58) ** 2 <= 11**2
    d_lung = dice(r.masks["lung"], poly(RIGHT_LUNG_CT_SMALL, shape) | poly(LEFT_LUNG_CT_SMALL, shape))
    d_bone = dice(r.masks["bone"], poly(VERTEBRA_CT_SMALL, shape) & ~canal)
    print(f"CT CT_small chest: lung Dice {d_lung:.3f}, bone Dice {d_bone:.3f}")
    assert d_lung >= 0.9 and d_bone >= 0.8
    assert not r.masks["bone"][canal].mean() > 0.2  # the spinal canal is not bone


def test_ct_expert_declines_grey_levels():
    values = np.full((64, 64), 120.0, np.float32)
    r = ct.read(ExpertInput(values, "CT", "head", 1.0, False, True))  # a PNG's grey levels stored as values
    assert not r.masks and "not Hounsfield units" in r.note


# ---- brain -----------------------------------------------------------------------------------------


def test_brain_on_head_ct_693(real):
    s = real("693_J2KR.dcm")
    r = brain.read(expert_input(s))
    d = dice(r.masks["brain"], poly(INTRACRANIAL_693, s.values.shape))
    print(f"brain CT 693: brain Dice {d:.3f}, hemisphere ratio {r.measurements['hemisphere_area_ratio']}")
    assert d >= 0.9
    left, right = r.masks["left hemisphere"], r.masks["right hemisphere"]
    # col_toward L: the patient's left is the image's right half
    assert np.nonzero(left)[1].mean() > np.nonzero(right)[1].mean()
    assert not (left & right).any()


@pytest.mark.slow
def test_brain_mr_on_mni152_against_its_tissue_maps(tmp_path):
    """nilearn's MNI152 2009 T1 with its grey- and white-matter maps (probabilities 0-255)."""
    t1 = nifti_slices(nilearn_mni("t1"), tmp_path / "t1", "MR", "brain", context_slices=9)
    gm = {s.slice_index: s.values for s in nifti_slices(nilearn_mni("gm"), tmp_path / "gm", "MR", "brain", context_slices=9)}
    wm = {s.slice_index: s.values for s in nifti_slices(nilearn_mni("wm"), tmp_path / "wm", "MR", "brain", context_slices=9)}
    inter = total = v_inter = v_total = 0.0
    sides_ok = sides_n = 0
    for s in t1:
        tissue = (gm[s.slice_index] + wm[s.slice_index]) >= 127.5
        truth = ndimage.binary_fill_holes(tissue)
        r = brain.read(expert_input(s))
        if not truth.any():
            assert "brain" not in r.masks
            continue
        found = r.masks.get("brain", np.zeros_like(truth))
        inter += 2 * float((found & truth).sum())
        total += float(found.sum() + truth.sum())
        # ventricles: the CSF pockets inside the tissue maps' brain, by the expert's own rule for what a ventricle is
        from medtrinity_assets.roi.builtin.grid import Grid

        vt = brain._ventricles(truth & ~tissue, truth, Grid.for_image(truth.shape, 1.0, target_mm=1.0))
        vf = r.masks.get("ventricles", np.zeros_like(truth))
        v_inter += 2 * float((vf & vt).sum())
        v_total += float(vf.sum() + vt.sum())
        if "left hemisphere" in r.masks:  # MNI is RAS on disk, LPS on our grid: the patient's left is high columns
            sides_n += 1
            sides_ok += int(np.nonzero(r.masks["left hemisphere"])[1].mean() > truth.shape[1] / 2)
    brain_dice, vent_dice = inter / total, v_inter / v_total
    print(f"brain MR MNI152: brain Dice {brain_dice:.3f}, ventricles Dice {vent_dice:.3f}, sides {sides_ok}/{sides_n}")
    assert brain_dice >= 0.95 and vent_dice >= 0.6 and sides_n >= 5 and sides_ok == sides_n


def test_brain_mr_needs_the_metadata_to_say_head(tmp_path):
    from medtrinity_assets_tests.support.formats import nib_data

    slices = nifti_slices(nib_data("anatomical.nii"), tmp_path, "MR", "", context_slices=3)
    assert all(not brain.read(expert_input(s)).masks for s in slices)
    for s in slices:  # the same slices named 'brain': a brain filling the tight field of view, both hemispheres
        r = brain.read(expert_input(s, organ="brain"))
        assert r.masks["brain"].mean() > 0.25 and {"left hemisphere", "right hemisphere"} <= set(r.masks)


# ---- chest radiograph --------------------------------------------------------------------------------

# RG1 (frontal chest radiograph, stored 482 x 512): lung fields traced on the raw image
RIGHT_LUNG_RG1 = [(150, 45), (110, 60), (75, 100), (60, 150), (52, 200), (50, 250), (50, 300), (55, 350), (90, 370),
                  (150, 368), (175, 362), (190, 330), (195, 280), (195, 220), (200, 160), (205, 100), (195, 55)]
LEFT_LUNG_RG1 = [(280, 45), (330, 55), (380, 75), (400, 100), (412, 150), (415, 200), (420, 250), (425, 300), (430, 350),
                 (435, 400), (400, 400), (360, 385), (345, 350), (320, 310), (300, 270), (280, 230), (272, 190), (270, 150),
                 (268, 100), (272, 60)]
CTR_RG1_BY_HAND = 0.40  # (MRD 40 + MLD 115 px) / ID 385 px, read off the same image


@pytest.mark.slow
def test_chest_radiograph_rg1_lungs_heart_and_ratio(real):
    s = real("RG1_J2KR.dcm")
    r = chest_xray.read(expert_input(s))
    shape = s.values.shape
    d_r = dice(r.masks["right lung"], poly(RIGHT_LUNG_RG1, shape))
    d_l = dice(r.masks["left lung"], poly(LEFT_LUNG_RG1, shape))
    ctr = r.measurements["cardiothoracic_ratio"]
    print(f"chest radiograph RG1: right lung Dice {d_r:.3f}, left lung Dice {d_l:.3f}, CTR {ctr} (by hand {CTR_RG1_BY_HAND})")
    assert d_r >= 0.75 and d_l >= 0.85
    assert abs(ctr - CTR_RG1_BY_HAND) <= 0.15
    heart = r.masks["heart"]
    assert heart.any() and np.nonzero(heart)[0].mean() > np.nonzero(r.masks["mediastinum"])[0].mean()
    assert r.region is not None and r.region.region == "chest"


@pytest.mark.slow
def test_chest_radiograph_expert_declines_a_leg(real):
    s = real("RG3_J2KR.dcm")  # distal tibia, BodyPartExamined EXTREMITY
    assert not chest_xray.read(expert_input(s)).masks
    r = chest_xray.read(expert_input(s, organ=""))  # even unlabelled: no pair of lung fields
    assert not r.masks and "not a frontal chest radiograph" in r.note


# ---- field of view -----------------------------------------------------------------------------------


def test_ultrasound_field_of_view_and_overlays(real):
    s = real("US1_J2KR.dcm")  # 512 x 384 colour Doppler of a lymph node with burned-in text
    r = field_of_view.read(rgb_input(s.image, "US"))
    truth = np.zeros(s.image.shape[:2], bool)
    truth[87:271, 11:500] = True  # the imaging rectangle, measured on the grid overlay
    d = dice(r.masks["field of view"], truth)
    m = r.measurements
    print(f"ultrasound US1: field of view Dice {d:.3f}, overlay fraction {m['annotation_overlay_fraction']}")
    assert d >= 0.95
    assert m["annotation_overlay_fraction"] > 0.01  # text, scale bar, markers outside the image
    x0, y0, x1, y1 = m["annotation_overlay_bbox"]
    assert y0 < 0.1 and y1 > 0.9  # header text at the top, scale and TIS/MI line at the bottom


def test_fundus_disc():
    rgb = skimage_image("retina")
    r = field_of_view.read(rgb_input(rgb, "FUNDUS"))
    truth = np.zeros(rgb.shape[:2], bool)
    rr, cc = draw_disk((705, 705), 688, shape=truth.shape)  # the disc spans x 17-1393 on the 1411-px image
    truth[rr, cc] = True
    d = dice(r.masks["field of view"], truth)
    print(f"fundus retina: field of view Dice {d:.3f}")
    assert d >= 0.97


def test_histology_tissue_versus_glass():
    rgb = skimage_image("immunohistochemistry")
    r = field_of_view.read(rgb_input(rgb, "HISTOLOGY"))
    tissue = r.masks["tissue"]
    # rectangles checked by eye: the white gap at the left edge; a stained gland; pale stroma with nuclei
    background = [(slice(330, 385), slice(2, 25))]
    tissue_boxes = [(slice(60, 200), slice(60, 200)), (slice(300, 380), slice(200, 260)), (slice(200, 260), slice(460, 500)),
                    (slice(380, 440), slice(290, 340))]
    correct = sum(int((~tissue[b]).sum()) for b in background) + sum(int(tissue[b].sum()) for b in tissue_boxes)
    n = sum(tissue[b].size for b in background + tissue_boxes)
    acc = correct / n
    print(f"histology IHC: tissue/background pixel accuracy {acc:.3f} on hand-checked boxes, "
          f"tissue fraction {r.measurements['field_of_view_fraction']}")
    assert acc >= 0.95
