"""Patient-level splits: one subject, one split.

Splits are assigned at ingest from the salted subject key alone (``deid.split_of``), so a subject's
images cannot land in both train and test. This module verifies it on the tables: a subject found in
two splits, or an image whose split is not the one its subject key gives, is a violation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from medtrinity_assets.deid import split_of

SPLITS = ("train", "validation", "test")


@dataclass
class SplitReport:
    counts: dict[str, int]  # images per split
    subjects: dict[str, int]  # subjects per split
    spanning_subjects: int  # subjects found in more than one split
    misassigned_images: int  # images whose split differs from split_of(subject_key)
    unknown_split_images: int
    missing_subject_images: int

    @property
    def ok(self) -> bool:
        return self.spanning_subjects == 0 and self.misassigned_images == 0 and self.unknown_split_images == 0


def check_splits(rows: Iterable[Mapping[str, Any]], verify_assignment: bool = True) -> SplitReport:
    """Rows need ``subject_key`` and ``split``. Subjects with an empty key are counted apart."""
    by_subject: dict[str, set[str]] = defaultdict(set)
    counts = {s: 0 for s in SPLITS}
    misassigned = unknown = missing = 0
    for r in rows:
        split = str(r.get("split") or "")
        subject = str(r.get("subject_key") or "")
        if split not in counts:
            unknown += 1
        else:
            counts[split] += 1
        if not subject:
            missing += 1
            continue
        by_subject[subject].add(split)
        if verify_assignment and split in counts and split_of(subject) != split:
            misassigned += 1
    subjects = {s: sum(1 for v in by_subject.values() if s in v) for s in SPLITS}
    spanning = sum(1 for v in by_subject.values() if len(v) > 1)
    return SplitReport(counts, subjects, spanning, misassigned, unknown, missing)
