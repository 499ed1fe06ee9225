"""Medical Segmentation Decathlon and nnU-Net layouts: ``dataset.json`` plus ``imagesTr/ labelsTr/ imagesTs/``.

Two dialects of ``dataset.json`` are read:

- **MSD** (and nnU-Net v1): ``modality`` names the channels (``{"0": "CT"}`` or ``{"0": "FLAIR",
  "1": "T1w", ...}``), ``labels`` maps voxel values to names (``{"1": "liver"}``), ``training``
  lists ``{"image", "label"}`` pairs and ``test`` lists images without labels;
- **nnU-Net v2**: ``channel_names`` names the channels, ``labels`` maps names to values
  (``{"liver": 1}``; region-based entries with lists of values are skipped), and there is no list:
  the cases are the files of ``imagesTr/`` (``<case>_<channel:4 digits><file_ending>``) with their
  labels at ``labelsTr/<case><file_ending>``, and ``imagesTs/`` for test cases.

When ``dataset.json`` has no ``training`` list the folders are the source of truth in both dialects
(an MSD download without the list, a v2 dataset); otherwise the list is, since the folders of real
MSD downloads also hold macOS ``._`` junk files. A case whose image is not NIfTI (nnU-Net's 2D
``.png`` datasets) is a quarantine row, not a silent skip. Loading reuses the NIfTI reader, so
orientation, 4D handling and quarantine reasons are the same; a multi-channel image keeps its first
channel (noted in meta).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medtrinity_assets.config import SourceSpec
from medtrinity_assets.formats import safety
from medtrinity_assets.formats.base import ItemRef, Quarantined, ReadError, ReadItem, ScanResult
from medtrinity_assets.formats.nifti import _max_voxels, check_pair, is_nifti_name, load_volume_pair, nifti_stem

MR_CHANNELS = ("MR", "MRI", "FLAIR", "T1", "T1W", "T1GD", "T1C", "T2", "T2W", "ADC", "DWI", "PD", "T2*", "SWI",
               "HIGH-B", "B0")
_CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
MAX_JSON_BYTES = 64 * 1024 * 1024


def channel_modality(name: str) -> str:
    """DICOM-style modality of an MSD channel name ('FLAIR' -> 'MR', 'CT' -> 'CT', 'PET' -> 'PT')."""
    up = str(name).strip().upper().replace(" ", "")
    if up in ("CT", "CECT", "NCCT"):
        return "CT"
    if up in ("PET", "PT"):
        return "PT"
    if up in ("US", "ULTRASOUND"):
        return "US"
    if up in MR_CHANNELS or up.startswith("T1") or up.startswith("T2") or "MR" in up:
        return "MR"
    return "OT"


def read_dataset_json(root: Path) -> dict[str, Any]:
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise ReadError("missing_dataset_json", f"MSD source {Path(root).name}/ has no dataset.json; "
                                                "use format nifti for a plain folder of volumes")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ReadError("bad_dataset_json", f"dataset.json is {path.stat().st_size} bytes, over the "
                                            f"{MAX_JSON_BYTES} a dataset description needs")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReadError("bad_dataset_json", f"dataset.json is not valid JSON ({exc})") from None
    except RecursionError:
        raise ReadError("bad_dataset_json", "dataset.json is nested too deeply to be a dataset description "
                                            "(thousands of levels); regenerate it") from None
    if not isinstance(doc, dict):
        raise ReadError("bad_dataset_json", "dataset.json must hold a JSON object")
    for key in ("training", "test"):
        if key in doc and not isinstance(doc[key], list):
            raise ReadError("bad_dataset_json", f"dataset.json field {key!r} must be a list")
    return doc


def _label_names(doc: dict[str, Any]) -> dict[int, str]:
    """Voxel value -> name, from MSD's ``{"1": "liver"}`` or nnU-Net v2's ``{"liver": 1}``."""
    names: dict[int, str] = {}
    raw = doc.get("labels")
    if not isinstance(raw, dict):
        return names
    for k, v in raw.items():
        value, name = _int(k), v
        if value is None:  # nnU-Net v2: name -> value (a list of values is a region: skipped)
            value, name = _int(v), k
        if value is not None and value != 0 and isinstance(name, (str, int)):
            names[value] = str(name)
    return names


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    try:
        return int(v) if isinstance(v, (int, str)) else None
    except ValueError:
        return None


def _channels(doc: dict[str, Any]) -> dict[int, str]:
    raw = doc.get("modality") or doc.get("channel_names") or {}
    out: dict[int, str] = {}
    if isinstance(raw, dict):
        for k, v in raw.items():
            key = _int(k)
            if key is not None and isinstance(v, (str, int)):
                out[key] = str(v)
    return out


def _listed_entries(doc: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(where, image, label) of the ``training`` and ``test`` lists."""
    entries: list[tuple[str, Any, Any]] = []
    for i, e in enumerate(doc.get("training") or []):
        if isinstance(e, dict):
            entries.append((f"training[{i}]", e.get("image"), e.get("label")))
        else:
            entries.append((f"training[{i}]", None, None))
    for i, e in enumerate(doc.get("test") or []):
        image = e.get("image") if isinstance(e, dict) else e
        entries.append((f"test[{i}]", image, None))
    return entries


def _file_ending(doc: dict[str, Any]) -> str:
    ending = doc.get("file_ending")
    return ending if isinstance(ending, str) and ending.startswith(".") else ".nii.gz"


def _case_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _strip_ending(name: str, ending: str) -> str:
    if name.lower().endswith(ending.lower()):
        return name[: -len(ending)]
    return nifti_stem(name)


def discovered_entries(root: Path, doc: dict[str, Any]) -> tuple[list[tuple[str, Any, Any, str]], list[Quarantined]]:
    """Cases found in ``imagesTr/`` (with ``labelsTr/``) and ``imagesTs/``, for a ``dataset.json``
    without a ``training`` list: (where, image, label, case). In nnU-Net v2 (``channel_names``) a file
    is ``<case>_<channel>``; otherwise (MSD) the file stem is the case. Files that are not NIfTI
    images become rows."""
    ending = _file_ending(doc)
    nnunet_v2 = "channel_names" in doc
    entries: list[tuple[str, Any, Any, str]] = []
    rows: list[Quarantined] = []
    for split, images, labels in (("training", "imagesTr", "labelsTr"), ("test", "imagesTs", None)):
        cases: dict[str, list[tuple[int, Path]]] = {}
        for p in _case_files(root / images):
            rel = f"{images}/{p.name}"
            if not is_nifti_name(p.name):
                rows.append(Quarantined(rel, "unsupported_file_kind", f"{rel} is not a NIfTI image (.nii/.nii.gz); "
                                        "this reader reads NIfTI cases only -- convert the file or remove it"))
                continue
            stem = _strip_ending(p.name, ending)
            m = _CHANNEL_SUFFIX.match(stem) if nnunet_v2 else None
            case, channel = (m.group("case"), int(m.group("channel"))) if m else (stem, 0)
            cases.setdefault(case, []).append((channel, p))
        for case in sorted(cases):
            _, p = min(cases[case])  # channel 0 (the first channel present)
            label = None
            if labels is not None:
                for name in dict.fromkeys((f"{case}{ending}", f"{case}.nii.gz", f"{case}.nii")):
                    if (root / labels / name).is_file():
                        label = f"{labels}/{name}"
                        break
            entries.append((f"{split}:{case}", f"{images}/{p.name}", label, case))
    return entries, rows


class MsdReader:
    kind = "msd"

    def scan(self, source: SourceSpec) -> Iterator[ScanResult]:
        root = Path(source.path)
        try:
            doc = read_dataset_json(root)
        except ReadError as err:
            yield Quarantined("dataset.json", err.error_class, err.reason)
            return
        max_voxels = _max_voxels(source.options)
        channels = _channels(doc)
        modality = channel_modality(channels[0]) if 0 in channels else (source.modality or "OT")
        if isinstance(doc.get("training"), list):
            entries = [(where, image, label, None) for where, image, label in _listed_entries(doc)]
        else:
            entries, rows = discovered_entries(root, doc)
            yield from rows
            if not entries and not rows:
                yield Quarantined("dataset.json", "no_cases", "dataset.json has no 'training' list and the folder "
                                  "has no imagesTr/ or imagesTs/ with NIfTI files: nothing to read -- check the "
                                  "source's path (it must be the dataset folder holding dataset.json)")
                return
        for where, image, label, case in entries:
            try:
                yield self._entry(root, where, image, label, case, modality, max_voxels, source.allow_links_into)
            except Exception as exc:  # noqa: BLE001 -- one odd case never stops the scan
                yield Quarantined(_clean(image)[:200] if isinstance(image, str) else where, "unreadable_header",
                                  f"dataset.json {where}: reading the case failed ({type(exc).__name__}); "
                                  "re-export the files")

    def _entry(self, root: Path, where: str, image: Any, label: Any, case: str | None, modality: str,
               max_voxels: int, allowed: tuple[Path, ...] = ()) -> ScanResult:
        shown = str(image) if image else where
        if not isinstance(image, str) or (label is not None and not isinstance(label, str)):
            return Quarantined(shown[:200], "bad_dataset_json", f"dataset.json {where}: 'image'/'label' must be paths")
        try:
            image_path = safety.inside_root(root, image, allowed)
            label_path = safety.inside_root(root, label, allowed) if label else None
            head = check_pair(image_path, label_path, max_voxels)
        except ReadError as err:
            return Quarantined(_clean(image), err.error_class, f"dataset.json {where}: {err.reason}")
        return ItemRef(
            kind=self.kind,
            locator={"image": image, "label": label, "split": where.split("[")[0].split(":")[0]},
            rel_path=_clean(image),
            subject_id=case or nifti_stem(Path(image).name),
            modality=modality,
            n_frames=head.canonical_shape[0],
        )

    def load(self, source: SourceSpec, ref: ItemRef) -> ReadItem:
        root = Path(source.path)
        doc = read_dataset_json(root)
        channels = _channels(doc)
        modality = channel_modality(channels[0]) if 0 in channels else (source.modality or "OT")
        names = _label_names(doc)
        names.update(source.label_names)  # the operator's explicit names win over dataset.json
        image_path = safety.inside_root(root, ref.locator["image"], source.allow_links_into)
        label = ref.locator.get("label")
        item = load_volume_pair(image_path, safety.inside_root(root, label, source.allow_links_into) if label else None,
                                modality=modality, label_names=names)
        if item.meta.get("n_volumes", 1) > 1:
            item.meta["note"] = (f"multi-channel image: channel 0 ({channels.get(0, '?')}) of "
                                 f"{item.meta['n_volumes']} used")
        if channels:
            item.meta["channel"] = channels.get(0, "")
        item.meta["msd_task"] = str(doc.get("name", ""))
        item.meta["msd_split"] = ref.locator.get("split", "")
        item.organ = source.organ
        item.disease = source.disease
        return item


def _clean(rel: str) -> str:
    text = str(rel).replace("\\", "/")
    return text[2:] if text.startswith("./") else text
