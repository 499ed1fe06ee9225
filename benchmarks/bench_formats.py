"""Reader overhead: the format readers against a bare library loop over the same files.

- nifti: ``NiftiReader.scan`` + ``load`` (header checks, full gzip CRC check, canonical LPS
  reorientation, NaN check) vs bare ``nibabel.load`` → ``as_closest_canonical`` → ``get_fdata``.
- image_folder: ``ImageFolderReader.scan`` + ``load`` (path guard, bomb limit, EXIF, mode
  handling) vs bare ``PIL.Image.open`` → ``np.asarray(float32)``.

Both loops run in one process, interleaved over several rounds; reported are volumes (or images)
per second of each and the ratio reader / bare (1.0 = no overhead, > 1 = the reader is faster).

Run: ``python -m benchmarks.bench_formats [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from medtrinity_assets.config import SourceSpec
from medtrinity_assets.formats.base import ItemRef
from medtrinity_assets.formats.image_folder import ImageFolderReader
from medtrinity_assets.formats.nifti import NiftiReader


def _make_volumes(folder: Path, n: int, shape: tuple[int, int, int]) -> list[Path]:
    import nibabel as nib

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        vol = rng.normal(0, 200, shape).astype(np.int16)
        affine = np.diag([-0.8, -0.8, 2.0, 1.0]) if i % 2 else np.diag([0.8, 0.8, 2.0, 1.0])
        img = nib.Nifti1Image(vol, affine)
        img.set_qform(affine, code=1)
        path = folder / f"v{i:03d}.nii.gz"
        nib.save(img, str(path))
        out.append(path)
    return out


def _make_images(folder: Path, n: int) -> list[Path]:
    import skimage.data
    from PIL import Image

    pics = [skimage.data.camera(), skimage.data.immunohistochemistry(), skimage.data.retina()[::2, ::2]]
    out = []
    for i in range(n):
        path = folder / f"im{i:03d}.png"
        Image.fromarray(np.ascontiguousarray(pics[i % len(pics)])).save(path)
        out.append(path)
    return out


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _reader_pass(reader, source: SourceSpec) -> int:
    n = 0
    for ref in reader.scan(source):
        if isinstance(ref, ItemRef):
            reader.load(source, ref)
            n += 1
    return n


def bench_nifti(folder: Path, n: int, shape, rounds: int) -> dict:
    import nibabel as nib

    paths = _make_volumes(folder, n, shape)
    source = SourceSpec(name="bench", format="nifti", path=folder, modality="CT")
    reader = NiftiReader()

    def bare():
        for p in paths:
            nib.as_closest_canonical(nib.load(str(p))).get_fdata(dtype=np.float32)

    t_bare = t_reader = 0.0
    for _ in range(rounds):
        t_bare += _time(bare)
        t_reader += _time(lambda: _reader_pass(reader, source))
    return {"volumes": n * rounds, "shape": list(shape), "bare_per_s": round(n * rounds / t_bare, 2),
            "reader_per_s": round(n * rounds / t_reader, 2), "ratio": round(t_bare / t_reader, 3)}


def bench_images(folder: Path, n: int, rounds: int) -> dict:
    from PIL import Image

    paths = _make_images(folder, n)
    source = SourceSpec(name="bench", format="image_folder", path=folder)
    reader = ImageFolderReader()

    def bare():
        for p in paths:
            with Image.open(p) as im:
                np.asarray(im, dtype=np.float32)

    t_bare = t_reader = 0.0
    for _ in range(rounds):
        t_bare += _time(bare)
        t_reader += _time(lambda: _reader_pass(reader, source))
    return {"images": n * rounds, "bare_per_s": round(n * rounds / t_bare, 2),
            "reader_per_s": round(n * rounds / t_reader, 2), "ratio": round(t_bare / t_reader, 3)}


def main(quick: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "nii").mkdir()
        (root / "img").mkdir()
        if quick:
            nifti = bench_nifti(root / "nii", 4, (128, 128, 48), rounds=2)
            images = bench_images(root / "img", 6, rounds=2)
        else:
            nifti = bench_nifti(root / "nii", 8, (256, 256, 120), rounds=3)
            images = bench_images(root / "img", 24, rounds=3)
    return {"nifti": nifti, "image_folder": images}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(main(quick=parser.parse_args().quick), indent=1))
