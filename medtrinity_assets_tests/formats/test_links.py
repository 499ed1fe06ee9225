"""Symlinks out of a source folder: refused by default, followed into the folders the config allows.

The case a site meets: a source folder whose files are symlinks into a shared data store. Without
``allow_links_into`` every file is a quarantine row with the usual reason; with the store listed the
source is read like any other, the rows naming the files by their names inside the source folder.
Entries that climb out by themselves (``..``) stay refused whatever the list says.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data

from medtrinity_assets.formats.base import get_reader
from medtrinity_assets.ingest import scan_source
from medtrinity_assets_tests.support.formats import copy_nib, save_png, source, split


def _linked_folder(tmp_path: Path) -> tuple[Path, Path]:
    store = tmp_path / "store"
    save_png(store / "cxr" / "a.png", skimage.data.camera())
    save_png(store / "cxr" / "b.png", np.asarray(skimage.data.camera())[::2, ::2])
    folder = tmp_path / "linked"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").symlink_to(store / "cxr" / "a.png")
    (folder / "sub" / "b.png").symlink_to(store / "cxr" / "b.png")
    return store, folder


def test_links_into_a_store_are_refused_unless_allowed(tmp_path):
    store, folder = _linked_folder(tmp_path)
    reader = get_reader("image_folder")

    refs, bad = split(reader.scan(source("linked", "image_folder", folder)))
    assert refs == [] and len(bad) == 2
    assert all(q.error_class == "path_outside_source" and "link to a file outside the source folder" in q.reason
               and "allow_links_into" in q.reason for q in bad)

    allowed = source("linked", "image_folder", folder, allow_links_into=(store,))
    refs, bad = split(reader.scan(allowed))
    assert bad == [] and sorted(r.rel_path for r in refs) == ["a.png", "sub/b.png"]
    items = {r.rel_path: reader.load(allowed, r) for r in refs}
    assert items["a.png"].pixels.shape == (512, 512) and items["sub/b.png"].pixels.shape == (256, 256)

    # a store that is not the one the links lead into does not help
    other = tmp_path / "other"
    other.mkdir()
    _, bad = split(reader.scan(source("linked", "image_folder", folder, allow_links_into=(other,))))
    assert len(bad) == 2


def test_csv_entries_that_climb_out_stay_refused(tmp_path):
    store, folder = _linked_folder(tmp_path)
    (folder / "labels.csv").write_text("filename,labels\na.png,normal\n../store/cxr/b.png,normal\n")
    src = source("linked", "image_folder", folder, labels_csv=folder / "labels.csv", allow_links_into=(store,))
    refs, bad = split(get_reader("image_folder").scan(src))
    assert [r.rel_path for r in refs if r.rel_path == "a.png"] == ["a.png"]
    climbing = [q for q in bad if "../store" in q.rel_path or "../store" in q.reason]
    assert climbing and all(q.error_class == "path_outside_source" for q in climbing)


def test_nifti_source_of_links_is_ingested_with_the_allow_list(tmp_path):
    store = tmp_path / "store"
    copy_nib("anatomical.nii", store)
    folder = tmp_path / "mr"
    folder.mkdir()
    (folder / "brain.nii").symlink_to(store / "anatomical.nii")
    refused = scan_source(source("mr", "nifti", folder, modality="MR"), salt="s", shards=2)
    assert refused.items == [] and [q["error_class"] for q in refused.quarantine] == ["path_outside_source"]
    allowed = scan_source(source("mr", "nifti", folder, modality="MR", allow_links_into=(store,)), salt="s", shards=2)
    assert allowed.quarantine == [] and len(allowed.items) == 1
