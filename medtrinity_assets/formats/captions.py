"""Image–caption pairs from JSON Lines: ``{"image": "rel/path.png", "caption": "...", ...}``.

The source path is one ``.jsonl`` file or a folder (every ``*.jsonl`` in it, sorted). Image paths
are relative to the folder holding the source (for a file source: its folder) and are checked
with :func:`safety.inside_root` before use. Optional fields: ``subject`` (else the image's stem),
``modality``, ``organ``, ``disease``, ``labels`` (list or ``;``-separated text).

Each line is one item (an image captioned twice gives two items). A line that is not UTF-8, not
JSON, lacks ``image``/``caption``, or names a missing, outside or unreadable image becomes a
quarantine row whose ``rel_path`` is ``<file>.jsonl:<line number>`` so the operator can open the
line; the other lines of the file are read as usual.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medtrinity_assets.config import SourceSpec
from medtrinity_assets.deid import scrub
from medtrinity_assets.formats import safety
from medtrinity_assets.formats.base import ItemRef, Quarantined, ReadError, ReadItem, ScanResult
from medtrinity_assets.formats.image_folder import image_item

MAX_CAPTION_CHARS = 20_000


def caption_files(path: Path) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise ReadError("missing_source", f"source path {p} does not exist; fix the source's path")
    files = sorted(q for q in p.glob("*.jsonl") if q.is_file() and not q.name.startswith("."))
    if not files:
        raise ReadError("missing_captions", f"{p.name}/ holds no .jsonl file of captions")
    return files


def _labels(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in re.split(r"[;|]", value) if v.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    raise ReadError("bad_row", f"'labels' must be a list or text, got {type(value).__name__}")


def read_lines(path: Path) -> list[str]:
    """The file's lines; bytes that are not UTF-8 are kept as surrogate escapes (PEP 383) so that only
    the lines holding them are lost (see :func:`is_text`), not the whole file."""
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    return text.removeprefix("\ufeff").splitlines()


def is_text(line: str) -> bool:
    """False for a line holding bytes that were not UTF-8 (surrogate escapes)."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_line(text: str) -> dict[str, Any]:
    """Validate one JSONL line into the fields a caption item needs."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReadError("bad_json", f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ReadError("bad_json", "the line nests JSON thousands of levels deep; it is not a caption record") from None
    if not isinstance(obj, dict):
        raise ReadError("bad_json", "the line is JSON but not an object with 'image' and 'caption'")
    image, caption = obj.get("image"), obj.get("caption")
    if not isinstance(image, str) or not image.strip():
        raise ReadError("bad_row", "field 'image' (relative path of the image) is missing or empty")
    if not isinstance(caption, str) or not caption.strip():
        raise ReadError("bad_row", "field 'caption' is missing or empty")
    if len(caption) > MAX_CAPTION_CHARS:
        raise ReadError("bad_row", f"caption has {len(caption)} characters, over {MAX_CAPTION_CHARS}")
    out = {"image": image.strip(), "caption": caption.strip(), "labels": _labels(obj.get("labels"))}
    for key in ("subject", "modality", "organ", "disease"):
        value = obj.get(key)
        if value is not None and not isinstance(value, (str, int)):
            raise ReadError("bad_row", f"field {key!r} must be text")
        out[key] = str(value).strip() if value is not None else ""
    return out


class CaptionsReader:
    kind = "caption"

    def scan(self, source: SourceSpec) -> Iterator[ScanResult]:
        root = safety.source_root(source.path)
        try:
            files = caption_files(source.path)
        except ReadError as err:
            yield Quarantined(Path(source.path).name, err.error_class, err.reason)
            return
        max_pixels = safety.max_pixels_of(source.options)
        for jsonl in files:
            try:
                lines = read_lines(jsonl)
            except OSError as exc:
                yield Quarantined(jsonl.name, "unreadable_file", f"{jsonl.name} cannot be read ({exc.strerror})")
                continue
            for number, text in enumerate(lines, start=1):
                if not text.strip():
                    continue
                where = f"{jsonl.name}:{number}"
                row = None
                try:
                    if not is_text(text):
                        raise ReadError("bad_encoding", "the line is not UTF-8 text (a byte sequence no UTF-8 "
                                                        "character has); re-save the file as UTF-8")
                    row = parse_line(text)
                    path = safety.inside_root(root, row["image"], source.allow_links_into)
                    if not path.exists():
                        raise ReadError("missing_file", f"image {row['image']!r} does not exist in the source folder")
                    safety.probe_image(path, max_pixels)
                except ReadError as err:
                    reason = f"{jsonl.name} line {number}: {err.reason}"
                    if row and row["subject"]:
                        reason = scrub(reason, (row["subject"],))
                    yield Quarantined(where, err.error_class, reason)
                    continue
                except Exception as exc:  # noqa: BLE001 -- one odd line never stops the scan
                    yield Quarantined(where, "bad_row", f"{jsonl.name} line {number}: checking it failed "
                                                        f"({type(exc).__name__})")
                    continue
                yield ItemRef(
                    kind=self.kind,
                    locator={**row, "file": str(path.relative_to(root.resolve())), "jsonl": jsonl.name,
                             "line": number},
                    rel_path=scrub(row["image"], (row["subject"],)) if row["subject"] else row["image"],
                    subject_id=row["subject"] or Path(row["image"]).stem,
                    modality=row["modality"] or source.modality,
                    identifiers=(row["subject"],) if row["subject"] else (),
                )

    def load(self, source: SourceSpec, ref: ItemRef) -> ReadItem:
        root = safety.source_root(source.path)
        loc = ref.locator
        path = safety.inside_root(root, loc["file"], source.allow_links_into)
        pixels, notes = safety.read_image(path, safety.max_pixels_of(source.options))
        item = image_item(pixels, notes, source, modality=loc.get("modality") or None,
                          organ=loc.get("organ") or None, disease=loc.get("disease") or None,
                          labels=loc.get("labels", []))
        item.caption = loc["caption"]
        item.meta["caption_line"] = f"{loc.get('jsonl')}:{loc.get('line')}"
        return item
