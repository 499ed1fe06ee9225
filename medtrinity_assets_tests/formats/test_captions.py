"""CaptionsReader: JSONL image-caption pairs, with bad lines quarantined by line number."""

from __future__ import annotations

import json

import numpy as np
import skimage.data

from medtrinity_assets.formats.base import get_reader
from medtrinity_assets.formats.captions import CaptionsReader
from medtrinity_assets_tests.support.formats import open_spy, save_png, source, split


def test_captions_jsonl(tmp_path, monkeypatch):
    root = tmp_path / "cap"
    save_png(root / "img" / "retina.png", skimage.data.retina())
    save_png(root / "img" / "camera.png", skimage.data.camera())
    secret = save_png(tmp_path / "secret.png", skimage.data.camera())
    (root / "img" / "fake.png").write_text("not an image")
    lines = [
        json.dumps({"image": "img/retina.png", "caption": "Fundus photograph with scattered haemorrhages.",
                    "subject": "eye01", "modality": "FUNDUS", "organ": "eye", "labels": "haemorrhage;exudate"}),
        "",
        "{this is not json",
        json.dumps({"image": "img/camera.png"}),
        json.dumps({"image": "../secret.png", "caption": "outside"}),
        json.dumps({"image": "img/absent.png", "caption": "missing"}),
        json.dumps({"image": "img/fake.png", "caption": "fake"}),
        json.dumps(["a", "list"]),
        json.dumps({"image": "img/camera.png", "caption": "A grey photograph.", "labels": ["photo"]}),
    ]
    (root / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    src = source("cap", "captions", root, modality="OT")
    reader = get_reader("captions")
    assert isinstance(reader, CaptionsReader)
    with open_spy(monkeypatch, secret) as hits:
        refs, bad = split(reader.scan(src))
    assert hits == []
    assert [(q.rel_path, q.error_class) for q in bad] == [
        ("pairs.jsonl:3", "bad_json"),
        ("pairs.jsonl:4", "bad_row"),
        ("pairs.jsonl:5", "path_outside_source"),
        ("pairs.jsonl:6", "missing_file"),
        ("pairs.jsonl:7", "not_an_image"),
        ("pairs.jsonl:8", "bad_json"),
    ]
    assert "pairs.jsonl line 3" in bad[0].reason and "caption" in bad[1].reason
    assert [r.rel_path for r in refs] == ["img/retina.png", "img/camera.png"]
    assert refs[0].subject_id == "eye01" and refs[1].subject_id == "camera"
    first, second = (reader.load(src, r) for r in refs)
    assert first.caption == "Fundus photograph with scattered haemorrhages."
    assert first.modality == "FUNDUS" and first.organ == "eye" and first.labels == ["haemorrhage", "exudate"]
    assert first.pixels.shape == (1411, 1411, 3)
    assert second.caption == "A grey photograph." and second.modality == "OT" and second.labels == ["photo"]
    np.testing.assert_array_equal(second.pixels, skimage.data.camera().astype(np.float32))
    assert second.meta["caption_line"] == "pairs.jsonl:9"


def test_single_file_source_and_empty_folder(tmp_path):
    save_png(tmp_path / "a.png", skimage.data.camera())
    (tmp_path / "one.jsonl").write_text(json.dumps({"image": "a.png", "caption": "x"}) + "\n")
    refs, bad = split(CaptionsReader().scan(source("c", "captions", tmp_path / "one.jsonl")))
    assert len(refs) == 1 and bad == []
    (tmp_path / "empty").mkdir()
    refs, bad = split(CaptionsReader().scan(source("c", "captions", tmp_path / "empty")))
    assert refs == [] and bad[0].error_class == "missing_captions"
