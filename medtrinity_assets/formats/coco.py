"""COCO detection/segmentation JSON: each COCO image is an item with its boxes and masks.

The JSON is ``annotations.json`` in the source folder, else the folder's only ``.json`` file
(or the source path itself when it names a ``.json`` file). ``file_name`` is resolved inside the
source folder, then inside its ``images/`` subfolder.

Bad annotations never cost the image (the rest of it is still a good sample):

- an annotation whose category id is not in ``categories``, whose image id is unknown, or whose
  box is malformed or lies wholly outside the image is quarantined on its own (``rel_path``
  ``<file_name>#annotation <id>``);
- a box that sticks out of the image is clipped to it and the count is noted in meta
  (``boxes_clipped``): the visible part is still a correct localisation.

An image missing on disk, not an image, over the pixel limit, or whose real size differs from the
JSON's ``width``/``height`` (the boxes would not fit it) is quarantined.
Boxes come out as ``{"label": category name, "bbox": [x0, y0, x1, y1]}`` in pixels; polygon or RLE
segmentations become a label map whose values are the category ids (later annotations overwrite
earlier ones where they overlap).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from medtrinity_assets.config import SourceSpec
from medtrinity_assets.deid import scrub
from medtrinity_assets.formats import safety
from medtrinity_assets.formats.base import MAX_LABEL_VALUE, ItemRef, Quarantined, ReadError, ReadItem, ScanResult
from medtrinity_assets.formats.image_folder import image_item


def find_coco_json(path: Path) -> Path:
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".json":
        return p
    if not p.is_dir():
        raise ReadError("missing_source", f"source folder {p} does not exist; fix the source's path")
    if (p / "annotations.json").is_file():
        return p / "annotations.json"
    found = sorted(q for q in p.glob("*.json") if q.is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        raise ReadError("missing_coco_json", f"{p.name}/ holds no annotations.json (nor any .json file)")
    raise ReadError("ambiguous_coco_json", f"{p.name}/ holds several .json files {[q.name for q in found]}; "
                                           "name the one to use annotations.json")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReadError("bad_coco_json", f"{Path(path).name} is not valid JSON ({exc})") from None
    except RecursionError:
        raise ReadError("bad_coco_json", f"{Path(path).name} is nested too deeply to be COCO (thousands of "
                                         "levels); regenerate it") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise ReadError("bad_coco_json", f"{Path(path).name} has no 'images' list; is it a COCO file?")
    for key in ("annotations", "categories"):
        if key in doc and not isinstance(doc[key], list):
            raise ReadError("bad_coco_json", f"{Path(path).name}: '{key}' must be a list")
    return doc


def clip_box(bbox: Any, width: int, height: int) -> tuple[list[float], bool]:
    """COCO ``[x, y, w, h]`` -> clipped ``[x0, y0, x1, y1]`` and whether clipping happened."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise ReadError("bad_box", f"bbox {bbox!r} is not [x, y, width, height]")
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ReadError("bad_box", f"bbox {bbox!r} holds non-numbers") from None
    if not all(np.isfinite([x, y, w, h])) or w <= 0 or h <= 0:
        raise ReadError("bad_box", f"bbox {bbox!r} has no area")
    raw = [x, y, x + w, y + h]
    out = [min(max(raw[0], 0.0), width), min(max(raw[1], 0.0), height),
           min(max(raw[2], 0.0), width), min(max(raw[3], 0.0), height)]
    if out[2] - out[0] <= 0 or out[3] - out[1] <= 0:
        raise ReadError("box_outside_image", f"bbox {bbox!r} lies wholly outside the {width}x{height} image")
    return out, out != raw


def _resolve_image(root: Path, file_name: str, allowed: tuple[Path, ...] = ()) -> Path:
    first = safety.inside_root(root, file_name, allowed)
    if first.exists():
        return first
    sub = root / "images"
    if sub.is_dir():
        second = safety.inside_root(sub, file_name, allowed)
        if second.exists():
            return second
    raise ReadError("missing_file", f"image {file_name!r} is not in {root.name}/ nor {root.name}/images/; "
                                    "add the file or drop it from the JSON")


def _is_id(value: Any) -> bool:
    """COCO ids are integers (text is accepted too); not booleans, floats, lists or objects."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _shown_id(value: Any) -> str:
    return str(value)[:40] if _is_id(value) else repr(value)[:40]


def _image_entries(entries: list[Any], json_name: str) -> tuple[dict[Any, dict[str, Any]], set[Any],
                                                                 list[Quarantined]]:
    """Image entries by id, the ids used twice, and rows. An entry without a usable id or file name is
    a row; so is every entry of an id used twice -- which of them its annotations belong to cannot be
    told (those annotations go with their images, without rows of their own)."""
    rows: list[Quarantined] = []
    by_id: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
    for i, im in enumerate(entries):
        if not isinstance(im, dict) or not isinstance(im.get("file_name"), str) or not im["file_name"].strip():
            rows.append(Quarantined(f"{json_name}#images[{i}]", "bad_coco_json", "image entry lacks a file_name"))
        elif not _is_id(im.get("id")):
            rows.append(_scrubbed(Quarantined(im["file_name"], "bad_coco_json",
                                              f"{json_name} images[{i}]: id {_shown_id(im.get('id'))} is not an "
                                              "integer (or text); annotations cannot refer to it"), im))
        else:
            by_id.setdefault(im["id"], []).append((i, im))
    images: dict[Any, dict[str, Any]] = {}
    duplicated: set[Any] = set()
    for image_id, found in by_id.items():
        if len(found) > 1:
            duplicated.add(image_id)
        if len(found) == 1:
            images[image_id] = found[0][1]
            continue
        where = ", ".join(f"images[{i}]" for i, _ in found)
        for _, im in found:
            rows.append(_scrubbed(Quarantined(im["file_name"], "duplicate_image_id",
                                              f"{json_name}: image id {_shown_id(image_id)} is used by {len(found)} "
                                              f"entries ({where}); their annotations cannot be told apart, so all "
                                              "are left out -- give each image its own id"), im))
    return images, duplicated, rows


def _annotation(a: Any, i: int, images: dict[Any, dict[str, Any]], duplicated: set[Any],
                good: dict[Any, tuple[Path, int, int]],
                categories: dict[int, str]) -> tuple[tuple[str, str] | None, dict[str, Any] | None]:
    """(problem, None) for an annotation to quarantine, (None, None) for one of a quarantined image,
    (None, entry) for a usable one (``entry["image_id"]`` names its image)."""
    if not isinstance(a, dict):
        return ("bad_annotation", "is not a JSON object; it is dropped"), None
    ann_id = a.get("id", i)
    image_id = a.get("image_id")
    if _is_id(image_id) and image_id in duplicated:
        return None, None  # goes with its images, quarantined for their shared id
    if not _is_id(image_id) or image_id not in images:
        return ("unknown_image", f"refers to image id {_shown_id(image_id)} that is not among the usable "
                                 "'images' entries; it is dropped"), None
    if image_id not in good:
        return None, None  # its image is quarantined already
    _, width, height = good[image_id]
    cat = a.get("category_id")
    if not _is_id(cat) or cat not in categories:
        return ("unknown_category", f"has category id {_shown_id(cat)}, not among the categories "
                                    f"{sorted(categories)}; add the category or fix the id (the image is kept)"), None
    crowd = a.get("iscrowd", 0)
    if crowd is None:
        crowd = 0
    if isinstance(crowd, bool) or crowd not in (0, 1):
        return ("bad_annotation", f"iscrowd is {_shown_id(crowd)}; COCO uses 0 or 1 -- it is dropped "
                                  "(the image is kept)"), None
    entry: dict[str, Any] = {"id": ann_id if _is_id(ann_id) else i, "category_id": cat, "label": categories[cat],
                             "segmentation": a.get("segmentation"), "iscrowd": int(crowd), "image_id": image_id}
    if a.get("bbox") is not None:
        try:
            entry["bbox"], entry["clipped"] = clip_box(a["bbox"], width, height)
        except ReadError as err:
            return (err.error_class, f"{err.reason}; it is dropped (the image is kept)"), None
    return None, entry


class CocoReader:
    kind = "coco_image"

    def scan(self, source: SourceSpec) -> Iterator[ScanResult]:
        root = safety.source_root(source.path)
        try:
            json_path = find_coco_json(source.path)
            doc = _load_json(json_path)
        except ReadError as err:
            yield Quarantined(Path(source.path).name, err.error_class, err.reason)
            return
        max_pixels = safety.max_pixels_of(source.options)
        categories: dict[int, str] = {}
        for i, c in enumerate(doc.get("categories") or []):
            cid = c.get("id") if isinstance(c, dict) else None
            if not _is_id(cid) or isinstance(cid, str):
                yield Quarantined(f"{json_path.name}#categories[{i}]", "bad_coco_json",
                                  f"category entry {i} has no integer 'id'; its annotations cannot be named")
            elif not 1 <= cid <= MAX_LABEL_VALUE:
                yield Quarantined(f"{json_path.name}#categories[{i}]", "bad_category_id",
                                  f"category id {cid} is outside 1..{MAX_LABEL_VALUE:,} (masks are 16-bit label images); "
                                  "renumber the categories")
            else:
                categories[cid] = str(c.get("name", cid))
        images, duplicated, bad_images = _image_entries(doc["images"], json_path.name)
        yield from bad_images
        good: dict[Any, tuple[Path, int, int]] = {}  # image id -> (path, width, height) of usable images
        for image_id, im in images.items():
            try:
                yield from self._check_image(root, json_path, image_id, im, max_pixels, good, source.allow_links_into)
            except Exception as exc:  # noqa: BLE001 -- one odd entry never stops the scan
                yield _scrubbed(Quarantined(str(im["file_name"]), "unreadable_image",
                                            f"{json_path.name} image id {image_id}: checking it failed "
                                            f"({type(exc).__name__})"), im)
        anns: dict[Any, list[dict[str, Any]]] = {k: [] for k in good}
        for i, a in enumerate(doc.get("annotations") or []):
            try:
                problem, entry = _annotation(a, i, images, duplicated, good, categories)
            except Exception as exc:  # noqa: BLE001
                problem, entry = ("bad_annotation", f"checking it failed ({type(exc).__name__})"), None
            if entry is not None:
                anns[entry.pop("image_id")].append(entry)
            elif problem is not None:
                ann_id = _shown_id(a.get("id", i) if isinstance(a, dict) else i)
                image_id = a.get("image_id") if isinstance(a, dict) else None
                im = images.get(image_id) if _is_id(image_id) else None
                where = f"{im['file_name']}#annotation {ann_id}" if im else f"{json_path.name}#annotation {ann_id}"
                yield _scrubbed(Quarantined(where, problem[0], f"annotation {ann_id}: {problem[1]}"), im or {})
        for image_id, (path, width, height) in good.items():
            im = images[image_id]
            name = im["file_name"]
            subject = str(im.get("subject") or im.get("patient_id") or Path(name).stem)
            idents = (str(im["patient_id"]),) if im.get("patient_id") else ()
            yield ItemRef(
                kind=self.kind,
                locator={"file": str(path.relative_to(root.resolve())), "image_id": image_id,
                         "width": width, "height": height, "annotations": anns[image_id],
                         "modality": im.get("modality")},
                rel_path=scrub(name, idents) if idents else name,
                subject_id=subject,
                modality=im.get("modality") or source.modality,
                identifiers=idents,
            )

    @staticmethod
    def _check_image(root: Path, json_path: Path, image_id: Any, im: dict[str, Any], max_pixels: int,
                     good: dict[Any, tuple[Path, int, int]], allowed: tuple[Path, ...] = ()) -> Iterator[Quarantined]:
        name = im["file_name"]
        try:
            path = _resolve_image(root, name, allowed)
            head = safety.probe_image(path, max_pixels)
        except ReadError as err:
            reason = f"{json_path.name} image id {image_id}: {err.reason}"
            yield _scrubbed(Quarantined(name, err.error_class, reason), im)
            return
        w, h = im.get("width"), im.get("height")
        if (w is not None or h is not None) and (w, h) != (head.width, head.height):
            reason = (f"{json_path.name} says {w}x{h} but the file is {head.width}x{head.height}; "
                      "the boxes would not fit, fix width/height in the JSON")
            yield _scrubbed(Quarantined(name, "size_mismatch", reason), im)
            return
        good[image_id] = (path, head.width, head.height)

    def load(self, source: SourceSpec, ref: ItemRef) -> ReadItem:
        root = safety.source_root(source.path)
        path = safety.inside_root(root, ref.locator["file"], source.allow_links_into)
        pixels, notes = safety.read_image(path, safety.max_pixels_of(source.options))
        h, w = pixels.shape[:2]
        anns = ref.locator.get("annotations") or []
        item = image_item(pixels, notes, source, modality=ref.locator.get("modality"), organ=None, disease=None,
                          labels=sorted({a["label"] for a in anns}))
        item.boxes = [{"label": a["label"], "bbox": [float(v) for v in a["bbox"]]} for a in anns if "bbox" in a]
        clipped = sum(1 for a in anns if a.get("clipped"))
        if clipped:
            item.meta["boxes_clipped"] = clipped
        label_map, names, bad = _label_map(anns, h, w)
        if label_map is not None:
            item.label_map = label_map
            item.label_names = names
        if bad:
            item.meta["masks_skipped"] = bad
        item.meta["coco_image_id"] = ref.locator.get("image_id")
        return item


def _scrubbed(q: Quarantined, image_entry: dict[str, Any]) -> Quarantined:
    """Scrub the image entry's patient id (if the JSON carries one) out of a quarantine row."""
    pid = image_entry.get("patient_id")
    if not pid:
        return q
    return Quarantined(scrub(q.rel_path, (str(pid),)), q.error_class, scrub(q.reason, (str(pid),)), q.stage)


def _label_map(anns: list[dict[str, Any]], h: int, w: int) -> tuple[np.ndarray | None, dict[int, str], list[Any]]:
    """Rasterise polygon/RLE segmentations to a category-id label map (None when there are none)."""
    with_seg = [a for a in anns if a.get("segmentation")]
    if not with_seg:
        return None, {}, []
    from pycocotools import mask as mask_utils

    top = max(int(a["category_id"]) for a in with_seg)
    label_map = np.zeros((h, w), dtype=np.uint8 if top < 256 else np.uint16)  # category ids are 1..65535
    names: dict[int, str] = {}
    bad: list[Any] = []
    for a in with_seg:
        seg = a["segmentation"]
        try:
            if isinstance(seg, list):
                polys = [p for p in seg if isinstance(p, list) and len(p) >= 6]
                if not polys:
                    raise ValueError("no polygon with 3 points")
                rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
            elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
                rle = mask_utils.frPyObjects(seg, h, w)
            elif isinstance(seg, dict) and isinstance(seg.get("counts"), (str, bytes)):
                counts = seg["counts"]
                rle = {"size": seg["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
                if list(rle["size"]) != [h, w]:
                    raise ValueError(f"RLE size {rle['size']} differs from the image {h}x{w}")
            else:
                raise ValueError("unknown segmentation encoding")
            mask = mask_utils.decode(rle).astype(bool)
        except Exception as exc:  # pycocotools raises plain Exceptions on malformed input
            bad.append({"annotation": a["id"], "reason": str(exc)[:200]})
            continue
        if mask.ndim == 3:
            mask = mask.any(axis=2)
        label_map[mask] = int(a["category_id"])
        names[int(a["category_id"])] = a["label"]
    if not names:
        return None, {}, bad
    return label_map, names, bad
