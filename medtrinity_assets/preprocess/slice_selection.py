"""Which axial slices of a volume become images.

Every slice that holds a ground-truth finding is kept, plus ``context`` evenly spaced slices so that
normal anatomy is represented too. When a label map carries both anatomy (liver, lung ...) and
findings (tumour, cyst ...), only the findings decide the ground-truth slices -- otherwise an organ
or the spine present on every slice would select the whole volume.
"""

from __future__ import annotations

import numpy as np

# label names that denote normal anatomy rather than a finding
ANATOMY_WORDS = frozenset(
    "background body liver spleen kidney kidneys lung lungs bone bones spine vertebra brain heart aorta "
    "pancreas stomach bladder prostate colon bowel muscle fat skin skull trachea oesophagus esophagus "
    "gallbladder adrenal uterus breast thyroid hippocampus anterior posterior left right organ".split()
)


def is_anatomy(name: str) -> bool:
    words = name.lower().replace("_", " ").replace("-", " ").split()
    return bool(words) and all(w in ANATOMY_WORDS for w in words)


def finding_labels(label_names: dict[int, str], present: set[int]) -> set[int]:
    """The label values (among ``present``) that are findings; all of them if none is named a finding."""
    named = {v for v in present if v in label_names and not is_anatomy(label_names[v])}
    unnamed = {v for v in present if v not in label_names}
    findings = named | unnamed
    anatomy_only = present - findings
    return findings if findings and anatomy_only else present


def label_presence(label_map: np.ndarray) -> np.ndarray:
    """(n_slices, max_label+1) boolean table: which label values occur on which slice.

    One counting pass (bincount) instead of a ``unique``/``isin`` per question; label maps are small
    non-negative integers."""
    n = label_map.shape[0]
    flat = label_map.reshape(n, -1)
    if flat.size == 0:
        return np.zeros((n, 1), dtype=bool)
    top = int(flat.max())
    if flat.dtype.kind not in "ui" or int(flat.min()) < 0 or top > 65535:
        return _presence_by_unique(flat, np.unique(flat))
    return np.stack([np.bincount(row, minlength=top + 1) > 0 for row in flat])


def _presence_by_unique(flat: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Slow path for odd label maps (negative, float or huge values): negatives and fractions are ignored."""
    values = [int(v) for v in values if v >= 0 and float(v).is_integer()]
    out = np.zeros((flat.shape[0], (max(values) if values else 0) + 1), dtype=bool)
    for v in values:
        out[:, v] = (flat == v).any(axis=1)
    return out


def context_slices(n: int, k: int) -> list[int]:
    """``k`` evenly spaced slice indices, each in the middle of its 1/k of the volume."""
    if n <= 0 or k <= 0:
        return []
    k = min(k, n)
    return sorted({int((i + 0.5) * n / k) for i in range(k)})


def select_slices(
    n: int,
    label_map: np.ndarray | None = None,
    context: int = 3,
    labels: set[int] | None = None,
    presence: np.ndarray | None = None,
) -> list[int]:
    """Sorted slice indices: every slice holding ground truth (``labels`` if given) plus context.

    A volume with neither ground truth nor context keeps its middle slice, so it is never dropped.
    ``presence`` is :func:`label_presence` of ``label_map`` when the caller has it already."""
    chosen = set(context_slices(n, context))
    if label_map is not None:
        if label_map.shape[0] != n:
            raise ValueError(f"label map has {label_map.shape[0]} slices, volume has {n}")
        table = presence if presence is not None else label_presence(label_map)
        cols = [v for v in (labels if labels is not None else range(1, table.shape[1])) if 0 < v < table.shape[1]]
        hit = table[:, cols].any(axis=1) if cols else np.zeros(n, dtype=bool)
        chosen.update(int(i) for i in np.flatnonzero(hit))
    if not chosen and n > 0:
        chosen.add(n // 2)
    return sorted(chosen)


def neighbours(i: int, n: int, k: int = 1) -> list[int]:
    """Indices of the slices within ``k`` of slice ``i`` (excluding it), clipped to the volume."""
    return [j for j in range(i - k, i + k + 1) if j != i and 0 <= j < n]
