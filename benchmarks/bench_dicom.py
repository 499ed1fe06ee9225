"""DICOM reader overhead: ``DicomReader.scan`` + ``load`` against a bare pydicom loop.

Input: a CT_small-like series -- copies of pydicom's ``CT_small.dcm`` (128x128 CT) turned into one
series of N slices (new SOP instance UIDs, positions 1 mm apart, shuffled file names).

- reader: scan the folder (headers only, grouping, sorting, identifier collection, path scrubbing)
  then load the series (decode, modality LUT, canonical orientation, allow-listed meta).
- bare: ``dcmread`` every file, ``pixel_array``, slope/intercept, sort by z, ``np.stack``.

Both run in one process, interleaved over rounds. Reported: files per second of each and the ratio
reader / bare (1.0 = no overhead), for scan+load and for load alone (the scan is a second pass over
the headers that the bare loop does not make). Run: ``python -m benchmarks.bench_dicom [--quick]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
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


def make_series(folder: Path, n: int) -> list[Path]:
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series_uid = generate_uid(entropy_srcs=["bench-series"])
    order = list(range(n))
    random.Random(0).shuffle(order)
    paths = []
    for name_index, k in enumerate(order):
        ds = copy.deepcopy(template)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["bench", str(k)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        x, y, z = (float(v) for v in template.ImagePositionPatient)  # the template stays untouched
        ds.ImagePositionPatient = [x, y, z + k * 1.0]
        path = folder / f"f{name_index:05d}"
        ds.save_as(path)
        paths.append(path)
    return paths


def run_reader(folder: Path) -> tuple[int, tuple[int, ...]]:
    reader = DicomReader()
    spec = SourceSpec(name="bench", format="dicom", path=folder)
    refs = [r for r in reader.scan(spec) if isinstance(r, ItemRef)]
    item = reader.load(spec, refs[0])
    return refs[0].n_files, item.pixels.shape


def timed_load(folder: Path) -> float:
    """Seconds for ``load`` alone (the scan is done before the clock starts)."""
    reader = DicomReader()
    spec = SourceSpec(name="bench", format="dicom", path=folder)
    refs = [r for r in reader.scan(spec) if isinstance(r, ItemRef)]
    t0 = time.perf_counter()
    reader.load(spec, refs[0])
    return time.perf_counter() - t0


def run_bare(paths: list[Path]) -> tuple[int, tuple[int, ...]]:
    slices = []
    for p in paths:
        ds = pydicom.dcmread(p)
        arr = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        slices.append((float(ds.ImagePositionPatient[2]), arr))
    slices.sort(key=lambda t: t[0])
    vol = np.stack([a for _, a in slices])
    return len(paths), vol.shape


def main(quick: bool = False) -> dict:
    n = 40 if quick else 200
    rounds = 2 if quick else 4
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_series(folder, n)
        run_reader(folder)  # warm imports and caches once
        run_bare(paths)
        t_reader = t_bare = t_load = 0.0
        for _ in range(rounds):
            t_load += timed_load(folder)
            t0 = time.perf_counter()
            files, shape = run_reader(folder)
            t_reader += time.perf_counter() - t0
            assert files == n and shape == (n, 128, 128), (files, shape)
            t0 = time.perf_counter()
            run_bare(paths)
            t_bare += time.perf_counter() - t0
    reader_fps = n * rounds / t_reader
    bare_fps = n * rounds / t_bare
    return {
        "series_files": n,
        "rounds": rounds,
        "reader_files_per_s": round(reader_fps, 1),
        "bare_files_per_s": round(bare_fps, 1),
        "ratio_reader_over_bare": round(reader_fps / bare_fps, 3),
        "load_only_files_per_s": round(n * rounds / t_load, 1),
        "ratio_load_only_over_bare": round((n * rounds / t_load) / bare_fps, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(main(quick=parser.parse_args().quick), indent=1))
