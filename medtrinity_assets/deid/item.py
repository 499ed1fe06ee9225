"""The per-item de-identification step of ingest: free text first, then pixels, before anything is stored.

``deidentify_item`` is called once per decoded item with its 2D slices (already windowed and resized,
not yet encoded or hashed). It

1. redacts free text that shipped with the item -- the source caption, CSV labels, disease and organ
   columns, and every string of the allow-listed metadata (DICOM descriptions) -- with
   :func:`medtrinity_assets.deid.detect.redact_text`, the item's header values included;
2. reads each slice for burned-in text when :func:`medtrinity_assets.deid.pixels.needs_ocr` says so,
   and applies the source's ``pixel_phi`` policy: ``redact`` (default; boxes blacked out in the image
   and the values array, the perceptual hash recomputed), ``quarantine`` (the item becomes a
   quarantine row naming the kinds found) or ``keep`` (explicit, for sources already cleaned: text
   is still read and counted, pixels untouched);
3. returns one provenance record per slice (``images.deid_json``): OCR engine and version, the
   blacked-out boxes with the kind of identifier each held, the kinds redacted in each text field,
   the header's BurnedInAnnotation (``burned_in``: true/false, null without a header) -- what the
   export check needs to know which images it must read (:func:`medtrinity_assets.deid.pixels.export_risk`).
   Records hold kinds and boxes, never the text.

Source options: ``pixel_phi: redact | quarantine | keep``, ``pixel_ocr: auto | always | never``,
``text_phi: redact | keep``. Global ``deid: {ocr_engine: rapidocr}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from medtrinity_assets.deid.detect import KnownValues, kinds_of, redact_text
from medtrinity_assets.deid.pixels import needs_ocr, redact_image

TEXT_FIELDS = ("caption", "disease", "organ")


@dataclass
class ItemDeid:
    records: list[dict[str, Any]] = field(default_factory=list)  # one per slice, in slice order
    quarantine: tuple[str, str] | None = None  # (error_class, reason)
    text_kinds: dict[str, dict[str, int]] = field(default_factory=dict)  # field -> kind -> count
    pixel_kinds: dict[str, int] = field(default_factory=dict)


def source_policy(source) -> tuple[str, str, str]:
    """(pixel policy, OCR mode, text policy) of a source: its typed options (checked, with defaults, at load)."""
    options = source.options
    return options.pixel_phi, options.pixel_ocr, options.text_phi


def redact_item_text(item, known: KnownValues) -> dict[str, dict[str, int]]:
    """Redact the item's free text in place; field -> kinds redacted."""
    out: dict[str, dict[str, int]] = {}
    for name in TEXT_FIELDS:
        value = getattr(item, name, None)
        if isinstance(value, str) and value:
            clean, found = redact_text(value, known)
            if found:
                setattr(item, name, clean)
                out[name] = kinds_of(found)
    labels, label_kinds = [], []
    for label in item.labels or []:
        clean, found = redact_text(str(label), known)
        labels.append(clean)
        label_kinds += found
    if label_kinds:
        item.labels = labels
        out["labels"] = kinds_of(label_kinds)
    meta_kinds: list = []
    item.meta = _redact_meta(item.meta, known, meta_kinds)
    if meta_kinds:
        out["meta"] = kinds_of(meta_kinds)
    return out


# codes that name equipment or encodings, never a person (a vendor "... Medical Systems" is no institution)
_META_SKIP = ("rgb", "modality", "transfer", "photometric", "manufacturer", "model", "software", "sopclass", "sop_class")


def _redact_meta(value: Any, known: KnownValues, found: list, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: (v if any(s in str(k).lower() for s in _META_SKIP) else _redact_meta(v, known, found, k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_meta(v, known, found, key) for v in value]
    if isinstance(value, str) and any(c.isalpha() for c in value):
        clean, f = redact_text(value, known)
        found += f
        return clean
    return value


def deidentify_item(item, slices: list, source, *, modality: str, identifiers: Iterable[str] = (),
                    public_words: Iterable[str] = (), engine_name: str = "rapidocr") -> ItemDeid:
    """Free text and pixels of one item (see module doc). ``slices`` are changed in place."""
    from medtrinity_assets.preprocess.phash import phash_hex

    policy, mode, text_policy = source_policy(source)
    known = KnownValues.from_values(identifiers, public_words=public_words)
    out = ItemDeid()
    if text_policy == "redact":
        out.text_kinds = redact_item_text(item, known)
    burned_in = getattr(item, "burned_in_annotation", None)
    ocr = needs_ocr(mode, modality, source.format, burned_in)
    engine = None
    if ocr:
        from medtrinity_assets.deid.ocr import get_engine

        engine = get_engine(engine_name)
    for sl in slices:
        record: dict[str, Any] = {"policy": policy, "ocr": None, "redacted_boxes": [], "text_fields": out.text_kinds,
                                  "burned_in": burned_in}
        if engine is not None:
            image, values, rep = redact_image(sl.image, sl.values, engine, known)
            record.update(rep.record())
            for kind, n in rep.kinds().items():
                out.pixel_kinds[kind] = out.pixel_kinds.get(kind, 0) + n
            if rep.found and policy == "quarantine":
                out.quarantine = ("burned_in_text", _quarantine_reason(rep.kinds()))
                return out
            if rep.found and policy == "redact":
                if rep.residual:
                    out.quarantine = ("burned_in_text_remains",
                                      f"burned-in text ({', '.join(rep.residual)}) still readable after "
                                      f"{rep.passes} redaction passes; remove the image or clean it by hand")
                    return out
                sl.image, sl.values = image, values
                sl.phash = phash_hex(image)
            if policy == "keep":
                record["redacted_boxes"] = []
                record["kept_phi_boxes"] = rep.boxes
        out.records.append(record)
    return out


def _quarantine_reason(kinds: dict[str, int]) -> str:
    what = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in kinds.items())
    return (f"burned-in text carries identifiers ({what}) and this source's pixel_phi policy is quarantine; "
            "set pixel_phi: redact to black them out instead")
