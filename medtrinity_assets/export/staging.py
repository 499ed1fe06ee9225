"""Write an export folder beside its final place, seal it with SHA256SUMS, then swap it in.

A reader sees either the previous complete folder or the new complete one, never a half-written
mix, and files of an earlier run that the new run does not produce disappear with the old folder.
What a killed run leaves (``.<shard>.<hex>.staging/``) is removed by the next export of the shard
and by ``medtrinity run`` (:func:`medtrinity_assets.storage.remove_stale_staging`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from medtrinity_assets.export.sha256sums import write_sha256sums
from medtrinity_assets.storage import staged_folder


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """The export folder ``final`` written aside and sealed with SHA256SUMS (its last file), then swapped in."""
    with staged_folder(final, seal=write_sha256sums) as tmp:
        yield tmp
