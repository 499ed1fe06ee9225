"""DICOM reader overhead: ``DicomReader.scan`` + ``load`` against a bare pydicom read+decode loop.

Inputs (same files for both sides): one multi-file series made of copies of a real CT slice with new
SOP instance UIDs, positions 1 mm apart and shuffled file names --

- ``ct_small``: pydicom's ``CT_small.dcm`` (128x128, a header of ~260 elements, most of them private
  tags): the header-heavy worst case, where parsing costs more than decoding. The headline ratio.
- ``ct_512``: pydicom-data's ``693_UNCR.dcm`` (512x512, 78 elements): a clinical slice size.

- reader: scan the folder (every header parsed once, identifiers collected, paths scrubbed, slices
  grouped, sorted and checked) then load the series (every slice decoded by pydicom, modality LUT,
  canonical orientation, allow-listed metadata).
- bare: ``dcmread`` every file, ``pixel_array`` (the same pydicom decoder), slope/intercept, sort by
  position, ``np.stack``.

Honesty: both sides decode every slice with pydicom from the same files; the reader's volume is
checked equal to the bare loop's, voxel for voxel. Both run in one process, interleaved over rounds
(alternating which goes first, so neither profits from a warmer page cache); rates are taken from
the median round of each side. Reported per series: files per second of each and the ratio
reader / bare (1.0 = no overhead), for scan+load and for load alone. Run: ``python -m benchmarks.bench_dicom [--quick]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medtrinity_assets.config import SourceSpec
from medtrinity_assets.formats.base import ItemRef
from medtrinity_assets.formats.dicom import DicomReader

TEMPLATES = {"ct_small": "CT_small.dcm", "ct_512": "693_UNCR.dcm"}


def make_series(folder: Path, n: int, template_name: str = "CT_small.dcm") -> list[Path]:
    template = pydicom.dcmread(get_testdata_file(template_name))
    series_uid = generate_uid(entropy_srcs=["bench-series", template_name])
    order = list(range(n))
    random.Random(0).shuffle(order)
    paths = []
    for name_index, k in enumerate(order):
        ds = copy.deepcopy(template)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["bench", template_name, str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        x, y, z = (float(v) for v in template.ImagePositionPatient)  # the template stays untouched
        ds.ImagePositionPatient = [x, y, z + k * 1.0]
        path = folder / f"f{name_index:05d}"
        ds.save_as(path)
        paths.append(path)
    return paths


def run_reader(folder: Path) -> np.ndarray:
    reader = DicomReader()
    spec = SourceSpec(name="bench", format="dicom", path=folder)
    refs = [r for r in reader.scan(spec) if isinstance(r, ItemRef)]
    assert len(refs) == 1, refs
    return reader.load(spec, refs[0]).pixels


def timed_load(folder: Path) -> float:
    """Seconds for ``load`` alone (the scan is done before the clock starts)."""
    reader = DicomReader()
    spec = SourceSpec(name="bench", format="dicom", path=folder)
    refs = [r for r in reader.scan(spec) if isinstance(r, ItemRef)]
    t0 = time.perf_counter()
    reader.load(spec, refs[0])
    return time.perf_counter() - t0


def run_bare(paths: list[Path]) -> np.ndarray:
    slices = []
    for p in paths:
        ds = pydicom.dcmread(p)
        arr = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        slices.append((float(ds.ImagePositionPatient[2]), arr.astype(np.float32)))
    slices.sort(key=lambda t: t[0])
    return np.stack([a for _, a in slices])


def measure(template: str, n: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_series(folder, n, template)
        # warm imports and caches once; the two sides must agree voxel for voxel
        reader_vol, bare_vol = run_reader(folder), run_bare(paths)
        assert reader_vol.shape == bare_vol.shape and np.array_equal(reader_vol, bare_vol), "reader != bare loop"
        reader_s: list[float] = []
        bare_s: list[float] = []
        load_s: list[float] = []
        for r in range(rounds):
            load_s.append(timed_load(folder))
            for side in (("reader", "bare") if r % 2 == 0 else ("bare", "reader")):
                t0 = time.perf_counter()
                run_reader(folder) if side == "reader" else run_bare(paths)
                (reader_s if side == "reader" else bare_s).append(time.perf_counter() - t0)
    # medians over rounds: a shared machine's bursts of load touch a few rounds, not the median
    reader_fps = n / statistics.median(reader_s)
    bare_fps = n / statistics.median(bare_s)
    load_fps = n / statistics.median(load_s)
    return {
        "series_files": n,
        "rounds": rounds,
        "reader_files_per_s": round(reader_fps, 1),
        "bare_files_per_s": round(bare_fps, 1),
        "ratio_reader_over_bare": round(reader_fps / bare_fps, 3),
        "load_only_files_per_s": round(load_fps, 1),
        "ratio_load_only_over_bare": round(load_fps / bare_fps, 3),
    }


def main(quick: bool = False) -> dict:
    n = 40 if quick else 200
    rounds = 15 if quick else 21
    out = measure(TEMPLATES["ct_small"], n, rounds)  # the headline keys stay at the top level
    if get_testdata_file(TEMPLATES["ct_512"]) is not None:  # pydicom-data installed
        out["ct_512"] = measure(TEMPLATES["ct_512"], n // 2, rounds)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(main(quick=parser.parse_args().quick), indent=1))
