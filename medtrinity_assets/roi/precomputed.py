"""Precomputed expert masks: per-volume multi-label masks made elsewhere, consumed as an expert.

A user with millions of volumes runs TotalSegmentator, nnU-Net or MONAI Label where GPUs are, and
points a source at the output (``expert_masks`` in the source entry)::

    expert_masks:
      name: totalseg          # the expert's name: ROIs get origin expert:totalseg@2.0
      version: "2.0"          # bump it when the masks are regenerated: partitions that used them rerun
      path: masks/            # folder of masks, one per volume
      labels: labels.json     # value -> name (JSON {"1": "liver"} or {"liver": 1}, or CSV value,name),
                              # or 'totalsegmentator' for one binary file per class named after the class

Where a volume's mask is looked for, in order: ``<path>/<the image's path inside the source>``;
``<path>/<image file stem>.nii.gz`` (nnU-Net, MONAI Label); ``<path>/<image file stem>/`` holding
``<class>.nii.gz`` files (TotalSegmentator's default output); for DICOM series the stem is the
SeriesInstanceUID. A volume without a mask, or whose mask has another shape or pixel spacing than the
volume, becomes a quarantine row (stage ``roi``) with the reason, and its images error rows; every
other volume goes on.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medtrinity_assets.roi.volumes import VolumeError, VolumeRef, check_alignment, read_label_volume

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def _stem(name: str) -> str:
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.removesuffix("_0000")  # nnU-Net channel suffix of input images


def read_label_names(spec) -> dict[int, str] | None:
    """The value -> name map of a mask folder: a mapping, a JSON/CSV file, or None for 'totalsegmentator'
    (per-class files, named by their class)."""
    if spec is None or (isinstance(spec, str) and spec.lower() == "totalsegmentator"):
        return None
    if isinstance(spec, dict):
        return {int(k): str(v) for k, v in spec.items()}
    path = Path(spec)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of value -> name")
        if all(isinstance(v, int) for v in data.values()):  # {"liver": 1} (TotalSegmentator / nnU-Net style)
            return {int(v): str(k) for k, v in data.items() if int(v) != 0}
        return {int(k): str(v) for k, v in data.items() if int(k) != 0}
    out = {}
    for line in csv.reader(text.splitlines()):
        if len(line) < 2 or not line[0].strip().lstrip("-").isdigit():
            continue  # a header or an empty line
        if int(line[0]) != 0:
            out[int(line[0])] = line[1].strip()
    if not out:
        raise ValueError(f"{path}: no 'value,name' rows")
    return out


@dataclass
class PrecomputedMasks:
    """A folder of per-volume masks and its label map, versioned like a model."""

    name: str
    version: str
    folder: Path
    names: dict[int, str] | None  # None: one file per class, named by the class
    digest: str = field(default="")

    @classmethod
    def from_config(cls, spec) -> PrecomputedMasks:
        names = read_label_names(spec.labels)
        key = json.dumps({"version": spec.version, "labels": names or "per-class files"}, sort_keys=True)
        return cls(spec.name, str(spec.version), Path(spec.path), names, hashlib.sha256(key.encode()).hexdigest())

    @property
    def origin(self) -> str:
        return f"expert:{self.name}@{self.version}"

    @property
    def version_key(self) -> str:
        return f"{self.version}@{self.digest[:16]}"

    def _candidates(self, volume: VolumeRef) -> list[Path]:
        rel = volume.locator.get("image") if volume.format in ("nifti", "msd") else None
        stem = _stem(Path(rel).name) if rel else volume.series_id
        out = []
        if rel:
            out.append(self.folder / rel)
        if stem:
            out += [self.folder / f"{stem}{s}" for s in NIFTI_SUFFIXES] + [self.folder / stem]
        return out

    def labels_for(self, volume: VolumeRef, rows: list[dict]) -> tuple[np.ndarray, dict[int, str]]:
        """The volume's label map in canonical (Z, H, W) order and its names; VolumeError when missing or misaligned."""
        from medtrinity_assets.formats import safety

        for path in self._candidates(volume):
            try:
                path = safety.inside_root(self.folder, str(path.relative_to(self.folder)))
            except Exception:
                continue
            if path.is_file():
                labels, spacing = self._read(path)
                check_alignment(labels, spacing, rows, f"mask {path.name}")
                names = dict(self.names or {})
                for v in np.unique(labels):
                    if int(v) != 0 and int(v) not in names:
                        names[int(v)] = f"label_{int(v)}"
                return labels, names
            if path.is_dir():
                return self._per_class(path, rows)
        raise VolumeError("mask_missing", f"no mask for this volume in {self.folder.name}/ "
                                          f"(looked for {', '.join(p.name for p in self._candidates(volume)) or 'nothing'})")

    def _read(self, path: Path):
        try:
            return read_label_volume(path)
        except VolumeError:
            raise
        except Exception as exc:
            raise VolumeError("mask_unreadable", f"{path.name}: {getattr(exc, 'reason', exc)}") from None

    def _per_class(self, folder: Path, rows: list[dict]) -> tuple[np.ndarray, dict[int, str]]:
        files = sorted(p for p in folder.iterdir() if p.name.endswith(NIFTI_SUFFIXES))
        if not files:
            raise VolumeError("mask_missing", f"{folder.name}/ holds no per-class NIfTI masks")
        labels = None
        names: dict[int, str] = {}
        for value, path in enumerate(files, start=1):
            mask, spacing = self._read(path)
            check_alignment(mask, spacing, rows, f"mask {folder.name}/{path.name}")
            if labels is None:
                labels = np.zeros(mask.shape, np.uint16)
            labels[mask > 0] = value
            names[value] = _stem(path.name).replace("_", " ")
        return labels, names
