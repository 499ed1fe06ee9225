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


# --- what a killed export leaves --------------------------------------------------------------------

_WRITER = """
import sys, time
from pathlib import Path
from medtrinity_assets.export.staging import staged_dir
final = Path(sys.argv[1])
with staged_dir(final) as tmp:
    (tmp / "part-0.parquet").write_bytes(b"half of a shard")
    print("writing", flush=True)
    time.sleep(600)
"""


def _start_writer(final: Path):
    """A real export writer, stopped inside its staging block (where a kill would hit it)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(final)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.stdout.readline().strip() == "writing"
    return proc


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_killed_export_leaves_staging_that_the_next_run_removes(tmp_path: Path):
    import signal

    from medtrinity_assets.storage import remove_stale_exports_staging

    layout = DataLayout(tmp_path / "out")
    final = layout.exports / "hf" / "s00"
    with staged_dir(final) as tmp:
        (tmp / "part-0.parquet").write_bytes(b"complete shard")
    killed = _start_writer(final)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    leftovers = _hidden(final.parent)
    assert any(n.startswith(".s00.") and n.endswith(".staging") for n in leftovers), leftovers
    assert (final / "part-0.parquet").read_bytes() == b"complete shard"  # the sealed shard was never touched

    live = _start_writer(layout.exports / "llava" / "s01")  # a concurrent run still writing
    try:
        removed = remove_stale_exports_staging(layout)
        assert [p.parent.name for p in removed] == ["hf"] and not removed[0].exists()
        assert _hidden(final.parent) == []  # the folder and its lock
        live_left = _hidden(layout.exports / "llava")
        assert any(n.endswith(".staging") for n in live_left), "a live writer's folder must stay"
    finally:
        live.kill()
        live.wait()
    # the next export of that shard removes the dead writer's leftovers too
    with staged_dir(layout.exports / "llava" / "s01") as tmp:
        (tmp / "train.json").write_text("[]")
    assert _hidden(layout.exports / "llava") == []
    assert sorted(p.name for p in (layout.exports / "llava" / "s01").iterdir()) == ["SHA256SUMS", "train.json"]


def test_kill_between_the_two_renames_leaves_nothing_behind(tmp_path: Path):
    """The previous folder moved aside (.s00.old-<hex>) and the kill came before the new one moved in."""
    from medtrinity_assets.storage import remove_stale_staging

    folder = tmp_path / "exports" / "hf"
    (folder / ".s00.0123456789ab.staging").mkdir(parents=True)
    (folder / ".s00.old-0123456789ab").mkdir()
    (folder / ".s00.0123456789ab.staging.lock").write_text("")
    (folder / ".s01.old-aaaaaaaaaaaa").mkdir()
    assert len(remove_stale_staging(folder, "s00")) == 2
    assert _hidden(folder) == [".s01.old-aaaaaaaaaaaa"]  # another shard's leftovers wait for their own turn
    remove_stale_staging(folder)
    assert _hidden(folder) == []
