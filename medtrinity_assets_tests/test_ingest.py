"""Isolation per item (issue 15): every bad input across every reader is one quarantine row of its
own class, and every good item mixed with them is kept."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest

from medtrinity_assets.config import load_config
from medtrinity_assets.ingest import build_images, build_manifest
from medtrinity_assets.partitions import SHARDS
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.bad_inputs import write_mixed_sources


def run_mixed(root):
    """Manifest and images of every source; (expected, image rows, quarantine rows)."""
    cfg_path, expected = write_mixed_sources(root)
    cfg = load_config(cfg_path)
    layout = DataLayout(cfg.data_root)
    images: list[dict] = []
    quarantine: list[dict] = []
    for source in cfg.sources:
        manifest, scan_rows = build_manifest(source, salt="mixed", shards=cfg.shards, layout=layout)
        quarantine += scan_rows.to_pylist()
        for shard in SHARDS[: cfg.shards]:
            result = build_images(cfg, source, shard, layout, salt="mixed", workers=1)
            images += result.table.to_pylist()
            quarantine += result.quarantine.to_pylist()
            assert isinstance(result.table, pa.Table)
    # tables hold file keys; the private table maps them back to the paths the expectations name
    from medtrinity_assets.deid.paths import lookup

    paths = lookup(layout.root, [r["rel_path"] for r in images + quarantine])
    for r in images + quarantine:
        assert r["rel_path"].startswith("fil-") and r["rel_path"] in paths
        r["rel_path"] = paths[r["rel_path"]]
    return expected, images, quarantine


def test_every_bad_input_is_one_row_and_every_good_item_is_kept(tmp_path):
    expected, images, quarantine = run_mixed(tmp_path)
    # one row per bad input, of the expected class and severity -- and no row for anything else
    got = Counter((q["source"], q["rel_path"], q["error_class"], q["severity"]) for q in quarantine)
    want = Counter((b.source, b.rel_path, b.error_class, b.severity) for b in expected.bad)
    assert got == want, {"missing": want - got, "unexpected": got - want}
    for q in quarantine:
        assert len(q["reason"]) > 30 and q["stage"] in ("scan", "load", "preprocess")
    # every good item is kept (each prefix is exactly one item), nothing else is
    items: dict[tuple[str, str], str] = {(r["source"], r["item_key"]): r["rel_path"] for r in images}
    for source, prefixes in expected.good.items():
        kept = [path for (s, _), path in items.items() if s == source]
        for prefix in prefixes:
            assert sum(path.startswith(prefix) for path in kept) == 1, (source, prefix, kept)
        assert len(kept) == len(prefixes), (source, kept)


def ingest_tables(root):
    """Every table ingest writes for every source of ``root/sources.yaml`` as sorted JSON rows (NaN equals
    NaN there), the private path table included: what must not change when the folder moves."""
    import json

    import pyarrow.parquet as pq

    cfg = load_config(root / "sources.yaml")
    layout = DataLayout(cfg.data_root)
    out: dict[str, list[dict]] = {}
    for source in cfg.sources:
        manifest, scan_rows = build_manifest(source, salt="mixed", shards=cfg.shards, layout=layout)
        out[f"{source.name}/manifest"] = manifest.to_pylist()
        out[f"{source.name}/scan_quarantine"] = scan_rows.to_pylist()
        for shard in SHARDS[: cfg.shards]:
            result = build_images(cfg, source, shard, layout, salt="mixed", workers=1)
            out[f"{source.name}/{shard}/images"] = result.table.to_pylist()
            out[f"{source.name}/{shard}/quarantine"] = result.quarantine.to_pylist()
    for path in sorted((layout.root / "private").rglob("*.parquet")):
        out[path.relative_to(layout.root).as_posix()] = pq.read_table(path).to_pylist()
    return {k: sorted(json.dumps(r, sort_keys=True, default=str) for r in v) for k, v in out.items()}


@pytest.mark.slow  # OCR of the headerless sources' images, twice; the DICOM reader's fast test is in formats/dicom
def test_a_moved_source_folder_keeps_its_keys_and_tables(tmp_path):
    """Keys are salted hashes of paths relative to the source folder (DICOM's locator held absolute paths
    once): the same sources in two folders give identical tables -- sample ids, item/subject/series keys,
    file keys, image hashes, quarantine rows -- for every reader."""
    import json
    import shutil

    write_mixed_sources(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    first, second = ingest_tables(tmp_path / "a"), ingest_tables(tmp_path / "elsewhere" / "b")
    assert first.keys() == second.keys()
    formats = {s.format for s in load_config(tmp_path / "a" / "sources.yaml").sources}
    assert formats >= {"dicom", "nifti", "msd", "image_folder", "coco", "captions"}
    images = [json.loads(r) for k, rows in first.items() if k.endswith("/images") for r in rows]
    assert {r["source"] for r in images} >= {"dicom", "nifti", "msd", "folder", "coco", "captions"}
    for key in first:
        assert first[key] == second[key], key
