"""Each image stored once: the loose-file formats (llava, vqa, coco) hard-link the content-addressed blob.

An image file in ``exports/<format>/images/`` is the same inode as ``blobs/<aa>/<sha256>.png`` (and as
the same image in the other formats' folders), so three formats cost no extra bytes. Blobs are never
rewritten in place (a new blob is a new file), so a link cannot change under a reader. Where the
filesystem refuses a hard link (another device, a filesystem without them), the image is copied and
counted, so the metadata says what it cost.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from medtrinity_assets.storage import temp_file_beside

_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


@dataclass
class Placed:
    linked: int = 0
    copied: int = 0

    def add(self, other: Placed) -> None:
        self.linked += other.linked
        self.copied += other.copied


def place(src: Path, dest: Path) -> bool:
    """Hard-link ``src`` at ``dest`` (True), or copy it when the filesystem refuses a link (False)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
        return True
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
    shutil.copyfile(src, dest)
    return False


def default_file_mode(folder: Path) -> int:
    """The mode a new file gets in ``folder`` under the current umask (read from a probe file, since
    ``os.umask`` can only be read by changing it, which races with other threads)."""
    fd, probe = temp_file_beside(Path(folder) / "mode-probe")
    try:
        return stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


def place_all(files: Mapping[str, Path], folder: Path) -> Placed:
    """``folder/<relative path>`` for every entry of ``files`` (relative path -> source file).

    A linked file keeps its source's mode; a blob written narrower than the umask allows (by an older
    version that created every file 0600) is widened to it, so every name of it is readable as any
    other file of the export."""
    out = Placed()
    Path(folder).mkdir(parents=True, exist_ok=True)
    wanted = default_file_mode(folder)
    for rel, src in sorted(files.items()):
        dest = Path(folder) / rel
        if place(Path(src), dest):
            out.linked += 1
        else:
            out.copied += 1
        mode = stat.S_IMODE(dest.stat().st_mode)
        if mode | wanted != mode:
            os.chmod(dest, mode | wanted)
    return out
