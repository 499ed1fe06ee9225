"""Builders of small real input files for the format-reader tests, and a spy on file opening."""

from __future__ import annotations

import builtins
import io
import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from medtrinity_assets.config import SourceSpec
from medtrinity_assets.formats.base import ItemRef, Quarantined


def source(name: str, fmt: str, path: Path, **kw) -> SourceSpec:
    options = kw.pop("options", {})
    return SourceSpec(name=name, format=fmt, path=Path(path), options=options, **kw)


def nib_data(name: str) -> Path:
    from nibabel.testing import data_path

    return Path(data_path) / name


def copy_nib(name: str, dest: Path, as_name: str | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / (as_name or name)
    shutil.copyfile(nib_data(name), out)
    return out


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None, version: int = 1) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    cls = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    img = cls(np.asarray(data), np.eye(4) if affine is None else affine)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    nib.save(img, str(path))
    return path


def ras_affine(spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Array axes (i, j, k) increase toward patient Right, Anterior, Superior."""
    return np.diag([spacing[0], spacing[1], spacing[2], 1.0])


def lps_affine(spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Array axes (i, j, k) increase toward patient Left, Posterior, Superior."""
    return np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])


def blob_volume_ras(shape=(20, 16, 10)) -> np.ndarray:
    """A float32 RAS-ordered (x, y, z) volume with a bright blob on the patient's LEFT (low x in RAS)
    and a dimmer one anterior-superior, so that flips of any axis are visible."""
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    vol = np.zeros(shape, np.float32)
    vol[(x - 3) ** 2 + (y - 8) ** 2 + (z - 5) ** 2 <= 4] = 100.0  # patient left
    vol[(x - 10) ** 2 + (y - 13) ** 2 + (z - 8) ** 2 <= 2] = 50.0  # anterior, superior
    vol += np.arange(shape[2], dtype=np.float32)[None, None, :] * 0.01  # a gradient toward superior
    return vol


def save_png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path)
    return path


def png_with_declared_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\x00" * 64)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    return path


def split(results) -> tuple[list[ItemRef], list[Quarantined]]:
    results = list(results)
    return [r for r in results if isinstance(r, ItemRef)], [r for r in results if isinstance(r, Quarantined)]


@contextmanager
def open_spy(monkeypatch, forbidden: Path) -> Iterator[list[str]]:
    """Record every attempt to open ``forbidden`` (through Python, os, Pillow or nibabel)."""
    import nibabel
    from PIL import Image

    target = Path(forbidden).resolve()
    hits: list[str] = []

    def check(arg):
        if isinstance(arg, (str, bytes, os.PathLike)):
            try:
                if Path(os.fsdecode(arg)).resolve() == target:
                    hits.append(os.fsdecode(arg))
            except (OSError, ValueError):
                pass

    def wrap(fn):
        def spy(*args, **kwargs):
            if args:
                check(args[0])
            return fn(*args, **kwargs)

        return spy

    monkeypatch.setattr(builtins, "open", wrap(builtins.open))
    monkeypatch.setattr(io, "open", wrap(io.open))
    monkeypatch.setattr(os, "open", wrap(os.open))
    monkeypatch.setattr(Image, "open", wrap(Image.open))
    monkeypatch.setattr(nibabel, "load", wrap(nibabel.load))
    monkeypatch.setattr(Path, "read_bytes", wrap(Path.read_bytes))
    monkeypatch.setattr(Path, "read_text", wrap(Path.read_text))
    yield hits
