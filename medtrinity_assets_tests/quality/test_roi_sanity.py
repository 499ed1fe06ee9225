"""ROI sanity: boxes in [0,1], masks non-empty, of the image's size and consistent with their boxes."""

from medtrinity_assets.quality.roi_sanity import check_rois
from medtrinity_assets_tests.support.quality import box_rle, roi_row


def test_good_rois_pass_and_each_defect_is_named():
    good = roi_row("a", "src")
    out_of_image = dict(roi_row("b", "src"), roi_id="oob", bbox=[0.5, 0.5, 1.2, 0.9])
    empty = dict(roi_row("c", "src"), roi_id="empty", mask_rle=box_rle(64, 64, [0.0, 0.0, 0.0, 0.0]))
    shifted = dict(roi_row("d", "src"), roi_id="shifted", bbox=[0.1, 0.1, 0.3, 0.3])
    wrong_size = dict(roi_row("e", "src"), roi_id="size", mask_rle=box_rle(32, 32, [0.55, 0.4, 0.75, 0.6]))
    error_row = dict(roi_row("f", "src"), status="error", bbox=None)
    sizes = {k: (64, 64) for k in "abcdef"}
    rep = check_rois([good, out_of_image, empty, shifted, wrong_size, error_row], sizes)
    assert rep.bad_boxes == ["oob"] and rep.empty_masks == ["empty"] and rep.box_mask_mismatch == ["shifted"]
    assert rep.wrong_mask_size == ["size"] and rep.error_rows == 1 and not rep.ok
    assert check_rois([good], sizes).ok
    assert check_rois([good], {}).missing_image == [good["roi_id"]]
