"""OCR engines that read burned-in text: RapidOCR (default) and Tesseract (cross-check, optional).

RapidOCR (``rapidocr-onnxruntime``) runs the PP-OCRv4 detector and recogniser through ONNX Runtime
with the model files inside the wheel: it installs from PyPI alone and reads small, coloured and
low-contrast overlay text better than Tesseract (figures in ``benchmarks/RESULTS.md`` and the README).
Tesseract needs the Debian ``tesseract-ocr`` package and is used when present, to check a redaction
with a second engine in the benchmark. EasyOCR was measured out: its ``torchvision`` dependency does
not load against the project's pinned CPU build of torch.

An engine returns :class:`TextBox` rows (text, pixel box, score). The engine object is created once
per process and shared by the ingest threads behind a lock.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

DEFAULT_ENGINE = "rapidocr"


@dataclass(frozen=True)
class TextBox:
    text: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels of the image read
    score: float


class OcrEngine(Protocol):
    name: str
    version: str

    def read(self, image: np.ndarray) -> list[TextBox]: ...


def _rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    elif img.shape[-1] == 4:
        img = img[..., :3]
    return np.ascontiguousarray(img)


class RapidOcrEngine:
    """PP-OCRv4 through ONNX Runtime; thresholds lowered from the defaults to favour recall."""

    name = "rapidocr-onnxruntime"

    def __init__(self, box_thresh: float = 0.3, text_score: float = 0.3):
        from importlib.metadata import version

        from rapidocr_onnxruntime import RapidOCR

        self.version = version("rapidocr-onnxruntime")
        self._ocr = RapidOCR(box_thresh=box_thresh, text_score=text_score, use_cls=False, intra_op_num_threads=2)
        self._lock = threading.Lock()

    def read(self, image: np.ndarray) -> list[TextBox]:
        img = _rgb(image)
        with self._lock:
            result, _ = self._ocr(img[..., ::-1])  # RapidOCR expects OpenCV's BGR order
        out = []
        for quad, text, score in result or []:
            pts = np.asarray(quad, dtype=float)
            x0, y0 = np.floor(pts.min(axis=0)).astype(int)
            x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
            out.append(TextBox(str(text), (int(x0), int(y0), int(x1), int(y1)), float(score)))
        return out


class TesseractEngine:
    """Tesseract 5 through ``pytesseract`` (Debian ``tesseract-ocr``); words grouped into lines."""

    name = "tesseract"

    def __init__(self):
        import pytesseract

        self._t = pytesseract
        self.version = str(pytesseract.get_tesseract_version())

    def read(self, image: np.ndarray) -> list[TextBox]:
        from PIL import Image

        data = self._t.image_to_data(Image.fromarray(_rgb(image)), config="--psm 11",
                                     output_type=self._t.Output.DICT)
        lines: dict[tuple[int, int, int], list[int]] = {}
        for i, word in enumerate(data["text"]):
            if word.strip() and float(data["conf"][i]) >= 0:
                lines.setdefault((data["block_num"][i], data["par_num"][i], data["line_num"][i]), []).append(i)
        out = []
        for idx in lines.values():
            x0 = min(data["left"][i] for i in idx)
            y0 = min(data["top"][i] for i in idx)
            x1 = max(data["left"][i] + data["width"][i] for i in idx)
            y1 = max(data["top"][i] + data["height"][i] for i in idx)
            text = " ".join(data["text"][i] for i in idx)
            score = float(np.mean([float(data["conf"][i]) for i in idx])) / 100.0
            out.append(TextBox(text, (x0, y0, x1, y1), score))
        return out


_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _engine(name: str) -> OcrEngine:
    if name == "rapidocr":
        return RapidOcrEngine()
    if name == "tesseract":
        return TesseractEngine()
    raise ValueError(f"unknown OCR engine {name!r}; use 'rapidocr' (default) or 'tesseract'")


def get_engine(name: str = DEFAULT_ENGINE) -> OcrEngine:
    """The process-wide engine of that name (created on first use; raises ImportError when not installed)."""
    with _LOCK:
        return _engine(name)


def engine_id(engine: OcrEngine) -> str:
    return f"{engine.name} {engine.version}"
