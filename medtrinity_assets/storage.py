"""Where outputs live under ``data_root`` and how they are written (atomically, content-addressed).

Layout::

    <data_root>/
      tables/<table>/<partition>.parquet   one Parquet file per asset partition (DuckDB views read them)
      blobs/<aa>/<sha256>.<ext>            PNG slices, masks, value arrays: content-addressed, written once
      previews/<asset>/<partition>.png     thumbnails/overlays shown in the Dagster UI (never exported)
      models/  knowledge/  exports/<format>/  card/
      catalog.duckdb                       views over tables/ (see catalog.py)
      .salt                                the de-identification salt when the config sets none
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def temp_file_beside(path: Path, suffix: str = ".tmp") -> tuple[int, Path]:
    """A new empty hidden file in ``path``'s folder, open for writing: (fd, path).

    Created with mode 0o666 so the user's umask decides the final mode, like any other file:
    ``tempfile.mkstemp`` creates 0600, and the rename into place would keep it (a colleague could
    not read the dataset).
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: could not create a temporary file beside {path.name}")


STAGING = ".staging"
# .<final>.<hex>.staging (the folder being written), .<final>.old-<hex> (the folder it replaces),
# .<final>.<hex>.staging.lock (held by the writer for as long as it works)
_STAGED_RE = re.compile(r"^\.(?P<final>.+)\.(?:(?P<hex>[0-9a-f]{12})\.staging(?P<lock>\.lock)?|old-(?P<old>[0-9a-f]{12}))$")


def _lock_path(folder: Path, final: str, token: str) -> Path:
    return folder / f".{final}.{token}{STAGING}.lock"


def _held(lock: Path) -> bool:
    """Whether a live process holds ``lock`` (``flock``; the kernel releases it when the process dies)."""
    try:
        fd = os.open(lock, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock this probe may have taken
    return False


def remove_stale_staging(folder: Path, final_name: str | None = None) -> list[Path]:
    """Remove what killed :func:`staged_folder` calls left in ``folder`` (for ``final_name`` only, if given).

    A writer holds its lock file for the whole write, and the lock file is only ever visible locked;
    so a leftover whose lock is not held belongs to a dead writer and goes, while a concurrent
    writer's folder stays. Returns the folders removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed: list[Path] = []
    for entry in sorted(folder.iterdir()):
        m = _STAGED_RE.match(entry.name)
        if not m or (final_name is not None and m["final"] != final_name):
            continue
        lock = entry if m["lock"] else _lock_path(folder, m["final"], m["hex"] or m["old"])
        if _held(lock):
            continue
        if m["lock"]:
            entry.unlink(missing_ok=True)
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    return removed


@contextlib.contextmanager
def staged_folder(final: Path, seal: Callable[[Path], Any] | None = None) -> Iterator[Path]:
    """Write a folder beside ``final``, ``seal`` it, then swap it in; yields the folder to write into.

    Readers see the previous complete folder or the new complete one. The staging folder is marked
    live by a lock held for the whole block; what a killed writer leaves (its staging folder, or the
    previous folder it was replacing) is removed by the next call for the same ``final`` and by
    :func:`remove_stale_staging`.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(final.parent, final.name)
    token = secrets.token_hex(6)
    tmp = final.parent / f".{final.name}.{token}{STAGING}"
    lock = _lock_path(final.parent, final.name, token)
    fd, pending = temp_file_beside(lock)  # locked under a private name, then renamed: never seen unlocked
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(pending, lock)
        tmp.mkdir(mode=0o777)  # the umask's mode, like any other folder (mkdtemp would force 0700)
        try:
            yield tmp
            if seal is not None:
                seal(tmp)
            old = None
            if final.exists():
                old = final.parent / f".{final.name}.old-{token}"
                final.rename(old)
            tmp.rename(final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        pending.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)
        os.close(fd)


def remove_stale_exports_staging(layout: DataLayout) -> list[Path]:
    """Every leftover of killed export writes under ``<data_root>/exports`` (formats and shards)."""
    removed = remove_stale_staging(layout.exports)
    if layout.exports.is_dir():
        for fmt in sorted(p for p in layout.exports.iterdir() if p.is_dir() and not p.name.startswith(".")):
            removed += remove_stale_staging(fmt)
    return removed


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True, mode: int | None = None) -> None:
    """Write to a temporary file in the same folder, (fsync,) then rename: readers never see half a file.

    ``durable=False`` skips the fsync: used for content-addressed blobs, whose size is checked
    again before reuse, so a blob lost to a crash is simply written anew. The file gets the mode
    the user's umask gives a new file, or ``mode`` (set before the rename, so it is never visible wider).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_table(path: Path, table: pa.Table) -> None:
    """Write a Parquet file atomically (temporary file, then rename)."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    atomic_write_bytes(path, buf.getvalue())


def read_table(path: Path, schema: pa.Schema | None = None) -> pa.Table:
    """Read a Parquet file; a missing file reads as an empty table of ``schema`` when one is given."""
    if not path.exists():
        if schema is None:
            raise FileNotFoundError(f"{path}: not materialised yet; materialise the upstream asset first")
        return schema.empty_table()
    return pq.read_table(path)


def partition_filename(partition: str | dict[str, str] | None) -> str:
    """``{'source': 'a', 'shard': 's00'}`` -> ``source=a/shard=s00`` (hive style, stable order)."""
    if partition is None:
        return "all"
    if isinstance(partition, str):
        return partition
    return "/".join(f"{k}={partition[k]}" for k in sorted(partition))


@dataclass(frozen=True)
class DataLayout:
    """Paths of everything the pipeline writes under one ``data_root``."""

    root: Path

    def table_path(self, table: str, partition: str | dict[str, str] | None = None) -> Path:
        return self.root / "tables" / table / f"{partition_filename(partition)}.parquet"

    def table_glob(self, table: str) -> str:
        return str(self.root / "tables" / table / "**" / "*.parquet")

    def preview_path(self, asset: str, partition: str | dict[str, str] | None, suffix: str = ".png") -> Path:
        return self.root / "previews" / asset / f"{partition_filename(partition)}{suffix}"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def knowledge(self) -> Path:
        return self.root / "knowledge"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def card(self) -> Path:
        return self.root / "card"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.duckdb"

    def put_blob(self, data: bytes, ext: str) -> tuple[str, str]:
        """Store ``data`` content-addressed; returns (path relative to root, sha256). Idempotent."""
        sha = hashlib.sha256(data).hexdigest()
        rel = f"blobs/{sha[:2]}/{sha}{ext}"
        path = self.root / rel
        try:
            present = path.stat().st_size == len(data)
        except FileNotFoundError:
            present = False
        if not present:
            atomic_write_bytes(path, data, durable=False)
        return rel, sha

    def resolve(self, rel: str) -> Path:
        return self.root / rel

    def salt(self, configured: str | None) -> str:
        """The configured salt, else one generated once per data_root and kept in ``.salt`` (never exported)."""
        if configured:
            return configured
        path = self.root / ".salt"
        if path.exists():
            return path.read_text().strip()
        atomic_write_bytes(path, secrets.token_hex(32).encode(), mode=0o600)  # private whatever the umask
        return path.read_text().strip()


def rows_to_table(rows: Iterable[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Build a table of exactly ``schema`` from dict rows (missing keys become nulls)."""
    rows = list(rows)
    if not rows:
        return schema.empty_table()
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)
