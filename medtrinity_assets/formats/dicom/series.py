"""From headers to items: which files form one volume, which stand alone, and what each SEG or
RTSTRUCT annotates -- all decided at scan time from the header summaries.

* cross-sectional slices (ImagePositionPatient + ImageOrientationPatient, not a projection
  modality) are grouped per patient and SeriesInstanceUID into one ``dicom_series`` item, sorted
  along the slice normal; slices that disagree with the rest (size, orientation, duplicates) are
  left out with a row each;
* a slice of such a series that has no position cannot be placed: it is left out, and the volume
  gets a *warning* row (``series_missing_positions``) -- not a stray 2D image of its own;
* a series with a gap (a step well above its usual spacing) is kept with a warning row
  (``series_gap``) that says how many slices are missing;
* multi-frame and enhanced objects are one ``dicom_multiframe`` item each; projection and other 2D
  images one ``dicom_file`` each;
* SEG and RTSTRUCT objects are attached to the item they reference (source SOP instances, series,
  or a unique frame of reference); without their images they become a row of their own.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from medtrinity_assets.formats.dicom.geometry import slice_sort_key, stack_gaps, vec
from medtrinity_assets.formats.dicom.headers import PROJECTION_MODALITIES, Header

Problem = tuple[str, str]  # (error_class, reason)


@dataclass
class Group:
    """One item to be: its image files (in volume order), its ground truth, its volume-level warnings."""

    kind: str  # dicom_series | dicom_multiframe | dicom_file
    headers: list[Header]
    gt: list[Header] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def idents(self) -> set[str]:
        out: set[str] = set()
        for h in [*self.headers, *self.gt]:
            out |= h.idents
        return out


def uid(values, kw: str) -> str:
    return str(values.get(kw) or "")


def series_key(h: Header) -> str:
    # a series never spans patients: sample collections reuse one series UID across patients
    return "|".join((str(h.get("PatientID") or ""), uid(h, "StudyInstanceUID"),
                     uid(h, "SeriesInstanceUID") or uid(h, "SOPInstanceUID") or str(h.path)))


def group_images(images: list[Header]) -> tuple[list[Group], list[tuple[Header, str, str]]]:
    """Items from usable image headers, and the files left out of them (header, class, reason)."""
    groups: list[Group] = []
    rejected: list[tuple[Header, str, str]] = []
    series: dict[str, list[Header]] = defaultdict(list)
    for h in images:
        if h.kind == "slice":
            series[series_key(h)].append(h)
    positionless: dict[str, list[Header]] = defaultdict(list)
    for h in images:
        if h.kind == "multiframe":
            groups.append(Group("dicom_multiframe", [h]))
        elif h.kind != "slice":
            key = series_key(h)
            if key in series and str(h.get("Modality", "")).upper() not in PROJECTION_MODALITIES:
                positionless[key].append(h)  # a slice of a volume that does not say where it lies
            else:
                groups.append(Group("dicom_file", [h]))
    for key in sorted(series, key=lambda k: str(series[k][0].path)):
        kept, left_out = consistent_slices(series[key])
        rejected.extend(left_out)
        if not kept:
            continue
        group = Group("dicom_series", kept)
        missing = positionless.get(key, [])
        if missing:
            group.warnings.append(("series_missing_positions", _missing_positions_reason(len(missing), len(kept))))
        gaps = stack_gaps([slice_sort_key(h)[0] for h in kept])  # kept is in position order
        if gaps is not None:
            group.warnings.append(("series_gap", _gap_reason(gaps)))
        groups.append(group)
    return groups, rejected


def _missing_positions_reason(n_missing: int, n_kept: int) -> str:
    what = "1 slice" if n_missing == 1 else f"{n_missing} slices"
    return (f"{what} of this series {'has' if n_missing == 1 else 'have'} no ImagePositionPatient (0020,0032) "
            f"or ImageOrientationPatient (0020,0037), so {'it' if n_missing == 1 else 'they'} cannot be placed in "
            f"the volume and {'was' if n_missing == 1 else 'were'} left out; the volume was kept with its other "
            f"{n_kept} slice{'s' if n_kept != 1 else ''} -- re-export the series with positions to get them back")


def _gap_reason(gaps) -> str:
    steps = ", ".join(f"{s:.3g} mm" for _, s in gaps.gaps[:3]) + (" ..." if len(gaps.gaps) > 3 else "")
    return (f"the slices of this series are {gaps.spacing:.3g} mm apart, but {len(gaps.gaps)} "
            f"step{'s are' if len(gaps.gaps) != 1 else ' is'} larger ({steps}): about {gaps.missing} "
            f"slice{'s are' if gaps.missing != 1 else ' is'} missing. The volume was kept with the slices it has, "
            "so distances across the gap are not to scale; add the missing files if you have them")


def consistent_slices(hs: list[Header]) -> tuple[list[Header], list[tuple[Header, str, str]]]:
    """Keep the slices that share the majority size and orientation and distinct positions."""
    rejected: list[tuple[Header, str, str]] = []

    def size(h: Header) -> tuple[int, int]:
        return (int(h.get("Rows") or 0), int(h.get("Columns") or 0))

    def orient(h: Header) -> tuple[float, ...]:
        try:
            return tuple(np.round(vec(h.get("ImageOrientationPatient")), 3))
        except Exception:  # noqa: BLE001
            return ()

    common_size = Counter(size(h) for h in hs).most_common(1)[0][0]
    kept = []
    for h in hs:
        if size(h) != common_size:
            rejected.append((h, "series_size_mismatch", f"slice is {size(h)[0]}x{size(h)[1]} while the rest "
                             f"of its series is {common_size[0]}x{common_size[1]}; skipped, the series "
                             "was kept without it"))
        else:
            kept.append(h)
    common_orient = Counter(orient(h) for h in kept).most_common(1)[0][0] if kept else ()
    same = []
    for h in kept:
        if orient(h) != common_orient:
            rejected.append((h, "series_orientation_mismatch", "slice orientation differs from the rest of "
                             "its series (a localiser?); skipped, the series was kept without it"))
        else:
            same.append(h)
    keys = {id(h): slice_sort_key(h) for h in same}
    same.sort(key=lambda h: (keys[id(h)], str(h.path)))
    out: list[Header] = []
    seen_sop: set[str] = set()
    seen_pos: set[float] = set()
    for h in same:
        sop = uid(h, "SOPInstanceUID")
        pos = round(keys[id(h)][0], 3)
        if sop and sop in seen_sop:
            rejected.append((h, "duplicate_instance", "same SOP instance as another file of the series "
                             "(a copy); skipped"))
            continue
        if pos in seen_pos:
            rejected.append((h, "duplicate_position", "another slice of the series lies at the same position "
                             "(repeat/echo); only the first was kept"))
            continue
        seen_sop.add(sop)
        seen_pos.add(pos)
        out.append(h)
    return out, rejected


def attach_ground_truth(groups: list[Group], gts: list[Header]) -> list[Header]:
    """Attach each SEG/RTSTRUCT to the group it references; returns those whose images are absent."""
    by_series: dict[str, list[int]] = defaultdict(list)
    by_sop: dict[str, int] = {}
    by_for: dict[str, set[int]] = defaultdict(set)
    for i, g in enumerate(groups):
        for h in g.headers:
            by_series[uid(h, "SeriesInstanceUID")].append(i)
            by_sop[uid(h, "SOPInstanceUID")] = i
            if uid(h, "FrameOfReferenceUID"):
                by_for[uid(h, "FrameOfReferenceUID")].add(i)
    unplaced = []
    for h in gts:
        target = _target(h, by_series, by_sop, by_for)
        if target is None:
            unplaced.append(h)
        else:
            groups[target].gt.append(h)
    return unplaced


def _target(h: Header, by_series, by_sop, by_for) -> int | None:
    hits = Counter(by_sop[s] for s in h.ref_sops if s in by_sop)
    if hits:
        return hits.most_common(1)[0][0]
    for s in sorted(h.ref_series):
        if by_series.get(s):
            return by_series[s][0]
    for f in sorted(h.ref_fors):
        cand = by_for.get(f, set())
        if len(cand) == 1:
            return next(iter(cand))
    return None
