"""Pixel de-identification on a generated set with known truth: recall, clean images kept, time per image.

The set (``medtrinity_assets.demo.burned_in.make_set``): PHI-bearing images with 1-4 burned-in names,
IDs, dates, times or institutions in varied fonts, sizes, colours, positions and contrast, on
greyscale and RGB backgrounds, and clean images (half with harmless overlays: L/R, scale bars, units,
probe and preset labels). Half of the PHI images come with "header values" (what a DICOM header
would hold), half with none (an image folder).

Figures (per engine):
- ``detected_recall``: PHI images in which at least one box was redacted;
- ``recall_after_redaction``: PHI images in which, after redaction, neither the engine itself nor the
  other engine (when installed) reads any planted identifier token (truth-based: the planted strings,
  not the detector, decide) -- the figure the issue asks for (target >= 0.98);
- ``clean_unchanged``: clean images whose pixels were not changed at all (target >= 0.95);
- ``seconds_per_image``: mean wall time of ``redact_image`` (every OCR pass included: one for an image
  without identifiers, two or more for one with them, since the redacted image is read again), with the
  reads per image and the time per read, so the cost of detection and blacking out beyond the reads shows.

Run: ``python -m benchmarks.bench_deid [--quick] [--engines rapidocr tesseract]``.
"""

from __future__ import annotations

import argparse
import json
import re
import time


def _tokens(text: str) -> set[str]:
    """The planted identifier's tokens that would identify: 3+ alphanumerics, labels dropped."""
    from medtrinity_assets.deid.detect import ocr_fold

    labels = {"NAME", "PATIENT", "ID", "MRN", "ACC", "DOB", "PID"}
    out = set()
    for t in re.split(r"[\s^,:#]+", text):
        f = ocr_fold(t)
        if len(f) >= 3 and f not in labels and not f.startswith("DOB"):
            out.add(f)
    return out


def _readable(boxes, planted_tokens: set[str]) -> bool:
    from medtrinity_assets.deid.detect import ocr_fold

    folded = " ".join(ocr_fold(b.text) for b in boxes)
    return any(tok in folded for tok in planted_tokens)


def run_engine(name: str, images, cross) -> dict:
    from medtrinity_assets.deid.detect import KnownValues
    from medtrinity_assets.deid.ocr import get_engine
    from medtrinity_assets.deid.pixels import redact_image

    engine = get_engine(name)
    engine.read(images[0].image)  # warm-up (model load)
    phi = [s for s in images if s.has_phi]
    clean = [s for s in images if not s.has_phi]
    detected = recalled = recalled_cross = unchanged = 0
    t_redact = 0.0
    n_reads = 0
    missed: list[str] = []
    changed: list[str] = []
    for s in images:
        known = KnownValues.from_values(s.header_values) if s.header_values else None
        t0 = time.perf_counter()
        out, _, rep = redact_image(s.image, None, engine, known)
        t_redact += time.perf_counter() - t0
        n_reads += rep.passes
        if s.has_phi:
            tokens = set().union(*(_tokens(t) for t in s.phi_texts))
            detected += rep.found
            own = _readable(rep.final_read, tokens)  # the engine's own read of the redacted image
            other = cross is not None and _readable(cross.read(out), tokens)
            recalled += not own
            recalled_cross += not (own or other)
            if own or other:
                missed.append(s.name)
        else:
            same = bool((out == s.image).all())
            unchanged += same
            if not same:
                changed.append(f"{s.name}: {rep.kinds()}")
    n = len(images)
    return {
        "engine": f"{engine.name} {engine.version}",
        "phi_images": len(phi), "clean_images": len(clean),
        "detected_recall": round(detected / len(phi), 4),
        "recall_after_redaction": round(recalled_cross / len(phi), 4) if cross is not None else round(recalled / len(phi), 4),
        "recall_after_redaction_own_engine": round(recalled / len(phi), 4),
        "cross_checked_with": f"{cross.name} {cross.version}" if cross is not None else None,
        "clean_unchanged": round(unchanged / len(clean), 4),
        "seconds_per_image": round(t_redact / n, 3),
        "ocr_reads_per_image": round(n_reads / n, 2),
        "seconds_per_ocr_read": round(t_redact / n_reads, 3) if n_reads else None,
        "missed": missed[:20],
        "clean_changed": changed[:20],
    }


def main(quick: bool = False, engines: tuple[str, ...] = ("rapidocr", "tesseract"), cross_only: bool | None = None) -> dict:
    """Each engine redacts the set and another installed engine cross-reads the result; with
    ``cross_only`` (the default in quick mode) only the first engine redacts, the others only cross-read."""
    cross_only = quick if cross_only is None else cross_only
    from medtrinity_assets.deid.ocr import get_engine
    from medtrinity_assets.demo.burned_in import make_set

    images = make_set(60, 50, seed=14) if not quick else make_set(50, 50, seed=14)
    available = {}
    for name in engines:
        try:
            available[name] = get_engine(name)
        except Exception as exc:  # an engine that is not installed is reported, not fatal
            available[name] = exc
    results: dict = {"images": len(images)}
    for k, (name, eng) in enumerate(available.items()):
        if cross_only and k > 0:
            break
        if isinstance(eng, Exception):
            results[name] = {"error": f"{type(eng).__name__}: {eng}"}
            continue
        others = [e for n, e in available.items() if n != name and not isinstance(e, Exception)]
        results[name] = run_engine(name, images, others[0] if others else None)
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--engines", nargs="+", default=["rapidocr", "tesseract"])
    ap.add_argument("--cross-only", action="store_true", help="only the first engine redacts; the others cross-read")
    a = ap.parse_args()
    print(json.dumps(main(a.quick, tuple(a.engines), a.cross_only or None), indent=1))
