"""Write an export folder beside its final place, seal it with SHA256SUMS, then swap it in.

A reader sees either the previous complete folder or the new complete one, never a half-written
mix, and files of an earlier run that the new run does not produce disappear with the old folder.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medtrinity_assets.export.sha256sums import write_sha256sums


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".staging"))
    try:
        yield tmp
        write_sha256sums(tmp)  # last file of the folder
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{tmp.name.split('.')[-2]}"
            final.rename(old)
        tmp.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
