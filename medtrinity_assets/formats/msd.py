"""Medical Segmentation Decathlon layout: ``dataset.json`` plus ``imagesTr/ labelsTr/ imagesTs/``.

``dataset.json`` is the source of truth (the folders of real MSD downloads also hold macOS ``._``
junk files): ``modality`` names the channels (``{"0": "CT"}`` or ``{"0": "FLAIR", "1": "T1w", ...}``),
``labels`` names the voxel values, ``training`` lists ``{"image", "label"}`` pairs and ``test``
lists images without labels. Loading reuses the NIfTI reader, so orientation, 4D handling and
quarantine reasons are the same; a multi-channel image keeps its first channel (noted in meta).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medtrinity_assets.config import SourceSpec
from medtrinity_assets.formats import safety
from medtrinity_assets.formats.base import ItemRef, Quarantined, ReadError, ReadItem, ScanResult
from medtrinity_assets.formats.nifti import _max_voxels, check_pair, load_volume_pair, nifti_stem

MR_CHANNELS = ("MR", "MRI", "FLAIR", "T1", "T1W", "T1GD", "T1C", "T2", "T2W", "ADC", "DWI", "PD", "T2*", "SWI",
               "HIGH-B", "B0")


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
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReadError("bad_dataset_json", f"dataset.json is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ReadError("bad_dataset_json", "dataset.json must hold a JSON object")
    for key in ("training", "test"):
        if key in doc and not isinstance(doc[key], list):
            raise ReadError("bad_dataset_json", f"dataset.json field {key!r} must be a list")
    return doc


def _label_names(doc: dict[str, Any]) -> dict[int, str]:
    names: dict[int, str] = {}
    for k, v in (doc.get("labels") or {}).items():
        try:
            value = int(k)
        except (TypeError, ValueError):
            continue
        if value != 0:
            names[value] = str(v)
    return names


def _channels(doc: dict[str, Any]) -> dict[int, str]:
    raw = doc.get("modality") or doc.get("channel_names") or {}
    out: dict[int, str] = {}
    if isinstance(raw, dict):
        for k, v in raw.items():
            try:
                out[int(k)] = str(v)
            except (TypeError, ValueError):
                continue
    return out


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
        entries: list[tuple[str, Any, Any]] = []
        for i, e in enumerate(doc.get("training") or []):
            if isinstance(e, dict):
                entries.append((f"training[{i}]", e.get("image"), e.get("label")))
            else:
                entries.append((f"training[{i}]", None, None))
        for i, e in enumerate(doc.get("test") or []):
            image = e.get("image") if isinstance(e, dict) else e
            entries.append((f"test[{i}]", image, None))
        for where, image, label in entries:
            shown = str(image) if image else where
            if not isinstance(image, str) or (label is not None and not isinstance(label, str)):
                yield Quarantined(shown, "bad_dataset_json", f"dataset.json {where}: 'image'/'label' must be paths")
                continue
            try:
                image_path = safety.inside_root(root, image)
                label_path = safety.inside_root(root, label) if label else None
                head = check_pair(image_path, label_path, max_voxels)
            except ReadError as err:
                yield Quarantined(_clean(image), err.error_class, f"dataset.json {where}: {err.reason}")
                continue
            yield ItemRef(
                kind=self.kind,
                locator={"image": image, "label": label, "split": where.split("[")[0]},
                rel_path=_clean(image),
                subject_id=nifti_stem(Path(image).name),
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
        image_path = safety.inside_root(root, ref.locator["image"])
        label = ref.locator.get("label")
        item = load_volume_pair(image_path, safety.inside_root(root, label) if label else None,
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
