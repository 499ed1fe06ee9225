"""Burned-in text: which images are read, what is blacked out, and the record of it.

Which images: every image of a modality at risk (US, SC/OT, XA, RF, ES, XC, GM, CR/DX/DR, endoscopy
and photographs), every image of a headerless source (image folders, COCO, caption sources), and
every image whose header says ``BurnedInAnnotation: YES``. A source can say ``pixel_ocr: always`` or
``never`` instead of ``auto``.

What is blacked out: each OCR text line, and each row of lines read together (a name split over two
boxes), goes through :func:`medtrinity_assets.deid.detect.find_phi` with the item's header values; a
line with a finding is filled with black (padded by a fifth of its height) in the stored image and,
for grey images, in the physical-values array on the same grid. Harmless overlays -- L/R markers,
scale numbers, units, probe and preset codes, anatomy labels -- match no rule and stay. A confidently
read word of four or more letters that is neither English nor a domain word (a name, or words the OCR
ran together such as "NORTHGATEMEDCTR") is blacked out too, as ``unrecognised_word``.

After redaction the image is read again; a line still carrying a finding is blacked out too (up to
three passes), and an image that still reads as PHI after that is quarantined, never stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medtrinity_assets.deid.detect import Finding, KnownValues, find_phi, ocr_fold
from medtrinity_assets.deid.ocr import OcrEngine, TextBox, engine_id

AT_RISK_MODALITIES = frozenset(
    {"US", "IVUS", "SC", "OT", "XA", "RF", "ES", "ENDO", "XC", "GM", "CR", "DX", "DR", "RG", "XR", "MG", "IO", "PX",
     "SM", "DERM", "FUNDUS", "OP", "HISTO", "HISTOLOGY", "PHOTO", "DOC"}
)
HEADERLESS_FORMATS = frozenset({"image_folder", "coco", "captions"})
POLICIES = ("redact", "quarantine", "keep")
OCR_MODES = ("auto", "always", "never")
MAX_PASSES = 3


def needs_ocr(mode: str, modality: str | None, source_format: str, burned_in: bool | None) -> bool:
    """Whether an image is read for burned-in text (see module doc)."""
    if mode == "never":
        return False
    if mode == "always":
        return True
    return (burned_in is True or source_format in HEADERLESS_FORMATS
            or (modality or "").upper() in AT_RISK_MODALITIES)


def export_risk(modality: str | None, source_format: str | None, deid_json: str | None) -> str | None:
    """Why an exported image must be read by the export PHI check (every such image is), or None for an
    image whose provenance says no text is expected (those are sampled, see ``quality.phi_pixels``).

    At risk: a headerless source (nothing says what the pixels hold), a modality at risk (whatever
    BurnedInAnnotation says, or without it), ``BurnedInAnnotation: YES``, and anything ingest found to
    redact -- boxes blacked out, boxes kept under ``pixel_phi: keep``, identifiers in its free text -- or
    read because the source asked (``pixel_ocr: always``); an image with no de-identification record
    (written before ingest kept one) is at risk too."""
    import json

    if (source_format or "") in HEADERLESS_FORMATS:
        return "headerless_source"
    if (modality or "").upper() in AT_RISK_MODALITIES:
        return "modality_at_risk"
    try:
        record = json.loads(deid_json) if deid_json else None
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return "no_deid_record"
    if record.get("burned_in"):
        return "burned_in_annotation"
    if record.get("redacted_boxes") or record.get("kept_phi_boxes"):
        return "pixels_redacted_at_ingest"
    if record.get("text_fields"):
        return "free_text_redacted_at_ingest"
    if record.get("ocr_ran"):
        return "read_at_ingest"
    return None


@dataclass
class PixelReport:
    """What happened to one image; ``record()`` is what goes into provenance (no text, only kinds)."""

    engine: str = ""
    ocr_ran: bool = False
    boxes: list[dict[str, Any]] = field(default_factory=list)  # {"bbox": [x0,y0,x1,y1] normalised, "kind": str}
    text_boxes_kept: int = 0
    passes: int = 0
    residual: list[str] = field(default_factory=list)  # kinds still read after the last pass
    final_read: list[TextBox] = field(default_factory=list, repr=False)  # the last OCR read (in memory only)

    @property
    def found(self) -> bool:
        return bool(self.boxes)

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.boxes:
            out[b["kind"]] = out.get(b["kind"], 0) + 1
        return dict(sorted(out.items()))

    def record(self) -> dict[str, Any]:
        return {"ocr": self.engine, "ocr_ran": self.ocr_ran, "redacted_boxes": self.boxes,
                "text_boxes_kept": self.text_boxes_kept, "passes": self.passes}


def _rows(boxes: list[TextBox]) -> list[list[int]]:
    """Indices of boxes grouped into text rows (vertical overlap over half the smaller height), left to right."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i].box[1], boxes[i].box[0]))
    rows: list[list[int]] = []
    for i in order:
        x0, y0, x1, y1 = boxes[i].box
        for row in rows:
            r = boxes[row[0]].box
            overlap = min(y1, r[3]) - max(y0, r[1])
            if overlap > 0.5 * min(y1 - y0, r[3] - r[1]):
                row.append(i)
                break
        else:
            rows.append([i])
    return [sorted(r, key=lambda i: boxes[i].box[0]) for r in rows]


UNKNOWN_WORD_MIN_SCORE = 0.8  # OCR confidence below which a rare word is more likely texture than text
UNKNOWN_WORD_MAX_ZIPF = 2.5  # rarer than ~0.3 per million words: not an English or domain word


def normalise_ocr_text(text: str) -> str:
    """Undo what OCR does to burned-in text: ``~`` read for ``^``, the space lost between words of
    mixed case ("MaelisVantrell" -> "Maelis Vantrell"), spaces read around the separators of a time
    or a date ("05 :18: 00")."""
    text = re.sub(r"(?<=[A-Za-z])[~`\u02c6](?=[A-Za-z])", "^", text)
    text = re.sub(r"(?<=[A-Z]{2})\.(?=[A-Z][a-z])", ", ", text)  # "HADDAD.Ahmed": a comma read as a period
    text = re.sub(r"(?<=\d) ?([:/.-]) ?(?=\d)", r"\1", text)  # "05 :18: 00" -> "05:18:00"
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)


def unknown_words(text: str, score: float) -> bool:
    """A confidently read word of four or more letters that is neither an English nor a domain word:
    in a screen capture that is a name, a place or a run of words the OCR read without spaces
    ("NORTHGATEMEDCTR", "PRUCHNAPRIYA"), and it is blacked out."""
    from medtrinity_assets.deid import lexicon as L

    if score < UNKNOWN_WORD_MIN_SCORE:
        return False
    for w in re.findall(r"[A-Za-z]{4,}", text):
        if w.lower() not in L.domain_words() and L.zipf(w) < UNKNOWN_WORD_MAX_ZIPF:
            return True
    return False


def _fuzzy_known(text: str, keys: dict[str, str]) -> str | None:
    folded = ocr_fold(text)
    for key, kind in keys.items():
        if key in folded:
            return kind
    return None


def classify_boxes(boxes: list[TextBox], known: KnownValues | None, *, unknown: bool = True) -> dict[int, str]:
    """Box index -> kind of the identifier it carries (boxes without one are left out). ``unknown``:
    also flag unrecognised words (redaction does; the export verification keeps to header values and
    name/ID/date/time patterns, so texture read as letters never fails a shard)."""
    flagged: dict[int, str] = {}
    keys = known.fuzzy_keys() if known is not None else {}
    texts = [normalise_ocr_text(b.text) for b in boxes]
    for i, b in enumerate(boxes):
        kind = _fuzzy_known(b.text, keys) if keys else None
        if kind is None:
            found = find_phi(texts[i], known)
            kind = found[0].kind if found else None
        if kind is None and unknown and unknown_words(texts[i], b.score):
            kind = "unrecognised_word"
        if kind:
            flagged[i] = kind
    # a row of boxes read as one line: a name split into "DOE" and "JANE" boxes
    for row in _rows(boxes):
        if len(row) < 2:
            continue
        text, spans, pos = "", [], 0
        for i in row:
            spans.append((pos, pos + len(texts[i]), i))
            text += texts[i] + " "
            pos = len(text)
        for f in find_phi(text, known):
            for a, b, i in spans:
                if a < f.end and f.start < b and i not in flagged:
                    flagged[i] = f.kind
    return flagged


def _fill(image: np.ndarray, values: np.ndarray | None, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    pad = max(2, int(round(0.2 * (y1 - y0))))
    x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    image[y0:y1, x0:x1] = 0
    if values is not None:
        values[y0:y1, x0:x1] = np.min(values)
    return x0, y0, x1, y1


def redact_image(image: np.ndarray, values: np.ndarray | None, engine: OcrEngine, known: KnownValues | None,
                 *, max_passes: int = MAX_PASSES) -> tuple[np.ndarray, np.ndarray | None, PixelReport]:
    """Black out every text line that carries an identifier (copies; the inputs are not changed)."""
    rep = PixelReport(engine=engine_id(engine), ocr_ran=True)
    img = np.array(image, copy=True)
    vals = None if values is None else np.array(values, copy=True)
    h, w = img.shape[:2]
    for _ in range(max_passes):
        boxes = engine.read(img)
        rep.passes += 1
        rep.final_read = boxes
        flagged = classify_boxes(boxes, known)
        if rep.passes == 1:
            rep.text_boxes_kept = len(boxes) - len(flagged)
        if not flagged:
            rep.residual = []
            break
        rep.residual = sorted(set(flagged.values()))
        for i, kind in sorted(flagged.items()):
            x0, y0, x1, y1 = _fill(img, vals, boxes[i].box)
            rep.boxes.append({"bbox": [round(x0 / w, 4), round(y0 / h, 4), round(x1 / w, 4), round(y1 / h, 4)],
                              "kind": kind})
    else:  # every pass found something: read once more to know whether anything is left
        rep.final_read = engine.read(img)
        rep.residual = sorted(set(classify_boxes(rep.final_read, known).values()))
    return img, vals, rep


def scan_image(image: np.ndarray, engine: OcrEngine, known: KnownValues | None) -> list[str]:
    """Kinds of identifier readable in an image (verification of exports; nothing is changed)."""
    return sorted(set(classify_boxes(engine.read(image), known, unknown=False).values()))


def findings_summary(findings: list[Finding]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in findings:
        out[f.kind] = out.get(f.kind, 0) + 1
    return out
