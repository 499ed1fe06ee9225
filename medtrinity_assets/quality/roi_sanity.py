"""ROI sanity: boxes inside the image, masks that decode, are non-empty, fit the image and agree
with their boxes. A wrong ROI here becomes a wrong location in every description downstream."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BOX_TOLERANCE_PX = 1.5  # mask bounds vs box, in pixels, plus 1% of the side


@dataclass
class RoiSanity:
    rois: int = 0
    error_rows: int = 0
    bad_boxes: list[str] = field(default_factory=list)
    empty_masks: list[str] = field(default_factory=list)
    wrong_mask_size: list[str] = field(default_factory=list)
    box_mask_mismatch: list[str] = field(default_factory=list)
    undecodable_masks: list[str] = field(default_factory=list)
    missing_image: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.bad_boxes or self.empty_masks or self.wrong_mask_size or self.box_mask_mismatch
                    or self.undecodable_masks or self.missing_image)

    def numbers(self) -> dict[str, int]:
        return {"rois": self.rois, "error_rows": self.error_rows, "bad_boxes": len(self.bad_boxes),
                "empty_masks": len(self.empty_masks), "wrong_mask_size": len(self.wrong_mask_size),
                "box_mask_mismatch": len(self.box_mask_mismatch),
                "undecodable_masks": len(self.undecodable_masks), "missing_image": len(self.missing_image)}


def box_ok(bbox: Any) -> bool:
    if bbox is None or len(bbox) != 4:
        return False
    x0, y0, x1, y1 = (float(v) for v in bbox)
    return all(np.isfinite([x0, y0, x1, y1])) and 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def check_rois(rois: Iterable[Mapping[str, Any]], image_sizes: Mapping[str, tuple[int, int]]) -> RoiSanity:
    """``image_sizes``: sample_id -> (width, height) of the image each ROI lies on."""
    from pycocotools import mask as mask_utils

    rep = RoiSanity()
    for r in rois:
        if (r.get("status") or "ok") != "ok":
            rep.error_rows += 1
            continue
        rep.rois += 1
        rid = str(r.get("roi_id") or r.get("sample_id"))
        bbox = r.get("bbox")
        if not box_ok(bbox):
            rep.bad_boxes.append(rid)
            continue
        size = image_sizes.get(str(r.get("sample_id")))
        if size is None:
            rep.missing_image.append(rid)
            continue
        rle = r.get("mask_rle")
        if not rle or not rle.get("counts"):
            continue  # box-only ROI (COCO sources): the box is the fact
        w, h = size
        try:
            m = mask_utils.decode({"size": [int(x) for x in rle["size"]], "counts": str(rle["counts"]).encode()})
        except Exception:
            rep.undecodable_masks.append(rid)
            continue
        if m.shape != (h, w):
            rep.wrong_mask_size.append(rid)
            continue
        ys, xs = np.nonzero(m)
        if xs.size == 0:
            rep.empty_masks.append(rid)
            continue
        x0, y0, x1, y1 = (float(v) for v in bbox)
        got = (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)
        tol_x, tol_y = BOX_TOLERANCE_PX / w + 0.01, BOX_TOLERANCE_PX / h + 0.01
        if (abs(got[0] - x0) > tol_x or abs(got[2] - x1) > tol_x or abs(got[1] - y0) > tol_y
                or abs(got[3] - y1) > tol_y):
            rep.box_mask_mismatch.append(rid)
    return rep
