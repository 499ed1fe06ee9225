"""Write an export folder beside its final place, seal it with SHA256SUMS, then swap it in.

A reader sees either the previous complete folder or the new complete one, never a half-written
mix, and files of an earlier run that the new run does not produce disappear with the old folder.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from medtrinity_assets.export.sha256sums import write_sha256sums
from medtrinity_assets.storage import temp_dir_beside


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(final)  # the umask's mode, like any other folder (mkdtemp would force 0700)
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
