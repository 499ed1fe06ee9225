"""Bytes on disk of a data root's exports, each file counted once however many names it has.

The loose-file formats hard-link their images to the content-addressed blobs and the dataset folders
link the Parquet and tar parts, so ``du`` on one folder tells little. This counts names, distinct
files (inodes) and the bytes that exist only because of the exports (files the blobs do not hold).

    python -m medtrinity_assets.export.footprint <data_root>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from medtrinity_assets.export.build import PARTS_FOLDER


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()] if folder.is_dir() else []


def _on_disk(paths: list[Path]) -> dict[tuple[int, int], int]:
    """(device, inode) -> bytes, one entry per distinct file."""
    out = {}
    for p in paths:
        st = p.stat()
        out[(st.st_dev, st.st_ino)] = st.st_size
    return out


def footprint(data_root: Path) -> dict[str, Any]:
    root = Path(data_root)
    exports = _files(root / "exports")
    parts = _files(root / PARTS_FOLDER)
    blobs = _on_disk(_files(root / "blobs"))
    export_files = _on_disk(exports)
    part_files = _on_disk(parts)
    images = [p for p in exports if p.suffix == ".png" and "images" in p.relative_to(root / "exports").parts]
    image_files = _on_disk(images)
    own = {k: v for k, v in {**export_files, **part_files}.items() if k not in blobs}
    return {
        "export_names": len(exports),
        "export_bytes_by_name": sum(p.stat().st_size for p in exports),  # what a copy without links would take
        "export_bytes_on_disk": sum(export_files.values()),
        "export_bytes_not_in_blobs": sum(v for k, v in export_files.items() if k not in blobs),
        "image_names": len(images),
        "image_files": len(image_files),
        "image_bytes_on_disk": sum(image_files.values()),
        "image_bytes_also_in_blobs": sum(v for k, v in image_files.items() if k in blobs),
        "part_bytes_on_disk": sum(part_files.values()),
        "part_bytes_not_in_blobs": sum(v for k, v in part_files.items() if k not in blobs),
        "bytes_only_the_exports_hold": sum(own.values()),  # exports + parts, files shared with blobs not counted
        "by_format": {f.name: sum(_on_disk(_files(f)).values()) for f in sorted((root / "exports").iterdir())
                      if f.is_dir()} if (root / "exports").is_dir() else {},
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m medtrinity_assets.export.footprint <data_root>", file=sys.stderr)
        return 2
    print(json.dumps(footprint(Path(args[0])), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
