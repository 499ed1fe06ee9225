"""Dedup, leakage, patient-level splits, PHI scan and SHA256SUMS, on small real files."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from medtrinity_assets.config import QualitySection
from medtrinity_assets.export.build import export_part
from medtrinity_assets.export.sha256sums import verify_sha256sums, write_sha256sums
from medtrinity_assets.quality.dedup import find_duplicates
from medtrinity_assets.quality.leakage import EvalHashError, find_leaks, load_eval_hashes
from medtrinity_assets.quality.phash import near_pairs, parse_hash
from medtrinity_assets.quality.phi import scan_tree
from medtrinity_assets.quality.splits import check_splits
from medtrinity_assets.storage import DataLayout
from medtrinity_assets_tests.support.exports import write_near_duplicates
from medtrinity_assets_tests.support.quality import image_row, make_png, roi_row, sample_set, triplet_row, write_partition

QUALITY = QualitySection(dedup_hamming=4, leakage_hamming=0)


def test_near_pairs_match_brute_force():
    import random

    rng = random.Random(1)
    base = [rng.getrandbits(64) for _ in range(40)]
    hashes = base + [b ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64)) for b in base[:10]]
    found = {(i, j) for i, j, _ in near_pairs(hashes, 4)}
    brute = {(i, j) for j in range(len(hashes)) for i in range(j) if (hashes[i] ^ hashes[j]).bit_count() <= 4}
    assert found == brute and len(found) >= 10


def test_duplicate_across_two_sources_is_caught_and_exported_once(tmp_path: Path):
    layout = DataLayout(tmp_path / "out")
    a_imgs, a_rois, a_trip = sample_set(layout, "src_a", "s00", n=3)
    b_imgs, b_rois, b_trip = sample_set(layout, "src_b", "s00", n=3, seed0=10)
    # src_b's first image is src_a's second image, re-packaged (same pixels)
    dup = image_row(layout, "src_b-dup", "src_b", "sub-other", png=make_png(1))
    b_imgs.append(dup)
    b_trip.append(triplet_row(dup, [roi_row("src_b-dup", "src_b")]))
    b_rois.append(roi_row("src_b-dup", "src_b"))
    write_partition(layout, "src_a", "s00", a_imgs, a_rois, a_trip)
    write_partition(layout, "src_b", "s00", b_imgs, b_rois, b_trip)

    result = find_duplicates(a_imgs + b_imgs, threshold=4)
    assert result.summary()["cross_source_groups"] == 1
    (group,) = result.groups
    assert {m.sample_id for m in group.members} == {"src_a-001", "src_b-dup"}
    assert group.representative == "src_a-001"

    excl = write_near_duplicates(layout, QUALITY)  # the near_duplicates asset's tables, read by the export
    res = export_part(layout, "webdataset", "s00", ["src_a", "src_b"], excl)
    assert res.selection.duplicates_folded == 1 and res.selection.exported == 6
    names, meta = [], None
    for tar_path in sorted(res.folder.glob("*.tar")):  # one tar per split
        with tarfile.open(tar_path) as tar:
            names += tar.getnames()
            if "src_a-001.json" in tar.getnames():
                meta = json.load(tar.extractfile("src_a-001.json"))
    assert "src_b-dup.png" not in names
    assert [d["source"] for d in meta["duplicates"]] == ["src_b"]  # all provenance kept


def test_slices_of_one_volume_are_not_duplicates():
    rows = [{"sample_id": f"s{i}", "source": "a", "phash": "ffff0000ffff0000", "volume_ref": "vol1"} for i in range(3)]
    assert find_duplicates(rows).groups == []
    assert len(find_duplicates(rows, same_volume_ok=False).groups) == 1


def test_groups_do_not_chain_and_pixels_can_veto_a_hash_match(tmp_path: Path):
    # a -> b -> c each 3 bits apart: b joins a's group, c (6 bits from a) starts its own
    rows = [{"sample_id": "a", "source": "s", "phash": "0000000000000000"},
            {"sample_id": "b", "source": "s", "phash": "0000000000000007"},
            {"sample_id": "c", "source": "s", "phash": "000000000000003f"}]
    groups = find_duplicates(rows, threshold=4).groups
    assert [[m.sample_id for m in g.members] for g in groups] == [["a", "b"]]
    # two different pictures that happen to share a hash: the pixel check keeps them apart
    from medtrinity_assets.quality.pixels import pixel_confirmer

    layout = DataLayout(tmp_path)
    pa_, _ = layout.put_blob(make_png(1), ".png")
    pb_, _ = layout.put_blob(make_png(2), ".png")
    pc_, _ = layout.put_blob(make_png(1), ".png")
    same_hash = [{"sample_id": x, "source": s, "phash": "ffff0000ffff0000", "image_path": p}
                 for x, s, p in (("x1", "a", pa_), ("x2", "b", pb_), ("x3", "c", pc_))]
    confirm = pixel_confirmer(tmp_path, 0.005)
    (group,) = find_duplicates(same_hash, confirm=confirm).groups
    assert [m.sample_id for m in group.members] == ["x1", "x3"]


def test_leaked_image_is_excluded_and_counted(tmp_path: Path):
    layout = DataLayout(tmp_path / "out")
    imgs, rois, trips = sample_set(layout, "src_a", "s00", n=4)
    write_partition(layout, "src_a", "s00", imgs, rois, trips)
    eval_file = tmp_path / "eval_hashes.txt"
    eval_file.write_text(f"# VQA-RAD test images\n{imgs[2]['phash']}\n\n")
    hashes = load_eval_hashes(eval_file)
    assert [h.sample_id for h in find_leaks(imgs, hashes)] == ["src_a-002"]
    excl = write_near_duplicates(layout, QUALITY, eval_file)
    res = export_part(layout, "hf", "s00", ["src_a"], excl)
    assert res.selection.leaked == 1 and res.selection.exported == 3 and len(excl.leaks) == 1
    ids = [r for f in res.folder.glob("*.parquet") for r in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
    assert "src_a-002" not in ids and len(ids) == 3


def test_bad_eval_hash_file_names_the_line(tmp_path: Path):
    bad = tmp_path / "h.txt"
    bad.write_text("0123456789abcdef\nnot-a-hash\n")
    try:
        load_eval_hashes(bad)
    except EvalHashError as exc:
        assert "h.txt:2" in str(exc)
    else:
        raise AssertionError("malformed hash file accepted")


def test_subject_spanning_splits_fails():
    from medtrinity_assets.deid import split_of

    rows = [{"subject_key": f"sub-{i}", "split": split_of(f"sub-{i}")} for i in range(50)]
    assert check_splits(rows).ok
    wrong = "test" if rows[0]["split"] != "test" else "train"
    report = check_splits(rows + [{"subject_key": "sub-0", "split": wrong}])
    assert not report.ok and report.spanning_subjects == 1 and report.misassigned_images == 1


def test_phi_scan_finds_planted_identifier_and_never_reports_it(tmp_path: Path):
    root = tmp_path / "exports"
    (root / "a").mkdir(parents=True)
    (root / "a" / "clean.json").write_text(json.dumps({"caption": "CT of the abdomen"}))
    pq.write_table(pa.table({"caption": ["clean", "Report of DOE^JANE here"], "n": [1, 2]}), root / "a" / "t.parquet",
                   compression="zstd")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b'{"note": "id PAT-778812"}'
        info = tarfile.TarInfo("k1.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (root / "a" / "s-000000.tar").write_bytes(buf.getvalue())
    (root / "a" / "hash.txt").write_text("9f8e7d6c5b4a3928 doesnotmatch")
    rep = scan_tree(root, ["Doe^Jane", "PAT-778812", "12"])
    assert rep.files_with_hits == ["a/s-000000.tar", "a/t.parquet"]
    assert rep.hits == 2 and rep.files_scanned == 4
    assert "Jane" not in json.dumps(rep.__dict__) and "778812" not in json.dumps(rep.__dict__)
    assert scan_tree(root, []).ok
    # header values that are domain words, and single words of a non-name value, are not searched alone
    (root / "a" / "caption.txt").write_text("CT imaging of the abdomen at the center of the image")
    rep2 = scan_tree(root, ["ABDOMEN", "JFK IMAGING CENTER", "PAT-778812", "----", "00000", "ANON"])
    assert "a/caption.txt" not in rep2.files_with_hits and rep2.files_with_hits == ["a/s-000000.tar"]


def test_sha256sums_tamper_is_detected(tmp_path: Path):
    d = tmp_path / "exp"
    (d / "images").mkdir(parents=True)
    (d / "images" / "x.png").write_bytes(b"png")
    (d / "a.json").write_text("{}")
    write_sha256sums(d)
    assert verify_sha256sums(d).ok
    (d / "a.json").write_text('{"changed": true}')
    (d / "extra.txt").write_text("x")
    rep = verify_sha256sums(d)
    assert not rep.ok and rep.mismatched == ["a.json"] and rep.unlisted == ["extra.txt"]
    (d / "images" / "x.png").unlink()
    assert verify_sha256sums(d).missing == ["images/x.png"]
    (d / "SHA256SUMS").unlink()
    assert "missing" in verify_sha256sums(d).error


def test_parse_hash_rejects_garbage():
    assert parse_hash("0xffff") == 0xFFFF
    for bad in ("", "xyz", "1" * 17):
        try:
            parse_hash(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
