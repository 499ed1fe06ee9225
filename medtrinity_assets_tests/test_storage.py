"""Atomic writes leave files like any other: the user's umask decides their mode (mkstemp's 0600 used to
survive the rename), and a staged export folder gets the umask's mode too."""

import contextlib
import os
import stat
from pathlib import Path

import pyarrow as pa
import pytest

from medtrinity_assets.export.staging import staged_dir
from medtrinity_assets.storage import DataLayout, atomic_write_bytes, write_table


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_outputs_follow_the_umask(tmp_path: Path, mask: int, file_mode: int, dir_mode: int):
    layout = DataLayout(tmp_path / "out")
    with umask(mask):
        atomic_write_bytes(tmp_path / "a" / "file.bin", b"x")
        write_table(layout.table_path("images", {"source": "s", "shard": "s00"}), pa.table({"a": [1]}))
        rel, _ = layout.put_blob(b"png bytes", ".png")
        with staged_dir(layout.exports / "llava") as tmp:
            atomic_write_bytes(tmp / "train.json", b"[]")
    assert _mode(tmp_path / "a" / "file.bin") == file_mode
    assert _mode(layout.table_path("images", {"source": "s", "shard": "s00"})) == file_mode
    assert _mode(layout.resolve(rel)) == file_mode
    assert _mode(layout.exports / "llava") == dir_mode
    assert _mode(layout.exports / "llava" / "train.json") == file_mode
    assert _mode(layout.exports / "llava" / "SHA256SUMS") == file_mode
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_salt_stays_private_whatever_the_umask(tmp_path: Path):
    layout = DataLayout(tmp_path)
    with umask(0o000):
        salt = layout.salt(None)
    assert len(salt) == 64 and _mode(tmp_path / ".salt") == 0o600
    assert layout.salt(None) == salt
