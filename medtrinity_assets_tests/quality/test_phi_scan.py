"""The export PHI scan is strict (whole names in every usual spelling, anywhere) and usable (a patient
called Small does not block every shard that says "small"); failures name the kind and the file, never the value."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from medtrinity_assets.quality.phi import scan_tree

PATIENTS = ["SMALL^JOHN", "LONG^MARY", "WHITE^ROSE", "YOUNG^PETER", "KOWALCZYK^ZOFIA"]


def _export(root: Path, captions: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"description": captions}), root / "train.parquet")
    (root / "llava.json").write_text(json.dumps([{"conversations": [{"value": c}]} for c in captions]))
    return root


def test_ordinary_words_of_patient_names_do_not_block_a_shard(tmp_path):
    root = _export(tmp_path / "clean", [
        "A small hypodense lesion in the long axis of the liver.",
        "White matter of a young adult brain, no focal lesion.",
        "Source white_matter_atlas, slice 12.",
    ])
    rep = scan_tree(root, PATIENTS + ["ST MARY HOSPITAL"], public_words=["white", "matter", "atlas"])
    assert rep.ok, rep.findings


def test_whole_names_in_every_usual_spelling_are_caught(tmp_path):
    for i, text in enumerate(["Report of John Small.", "SMALL^JOHN", "SMALL, John", "J. Small was scanned",
                              "file Small_John_0001", "Zofia Kowalczyk", "kowalczyk"]):
        root = _export(tmp_path / f"e{i}", ["A small lesion.", text])
        rep = scan_tree(root, PATIENTS)
        assert not rep.ok and set(rep.hits_by_kind) == {"patient_name"}, text
        assert rep.files_with_hits == ["llava.json", "train.parquet"]


def test_failure_says_which_kind_and_where_never_the_value(tmp_path):
    root = _export(tmp_path / "bad", ["Seen 2004-08-26 under MRN PAT778812 at ST MARY HOSPITAL by Rose White."])
    rep = scan_tree(root, PATIENTS + ["PAT778812", "20040826", "ST MARY HOSPITAL"])
    assert rep.hits_by_kind == {"date": 2, "id": 2, "institution": 2, "patient_name": 2}
    message = rep.describe()
    assert "date" in message and "ID" in message and "institution" in message and "patient name part" in message
    assert "train.parquet" in message and "llava.json" in message
    blob = json.dumps({**rep.__dict__, "message": message})
    for secret in ("778812", "2004", "MARY", "Rose", "White"):
        assert secret.lower() not in blob.lower(), secret


def _png_with(chunks: list[tuple[bytes, bytes]]) -> bytes:
    import struct
    import zlib

    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return out


def test_png_text_is_searched_and_its_pixel_stream_is_not(tmp_path):
    import zlib

    ihdr = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    # the pixel stream is never searched as text (a crafted one here; by chance, short name parts do occur in it)
    by_chance = _png_with([(b"IHDR", ihdr), (b"IDAT", b"\x9c\x1eCOMPRESSEDSAMPLES^CT1\xc6R"), (b"IEND", b"")])
    names = ["COMPRESSEDSAMPLES^CT1"]
    for name, png in (("image.png", by_chance),):
        (tmp_path / "clean").mkdir(exist_ok=True)
        (tmp_path / "clean" / name).write_bytes(png)
    pq.write_table(pa.table({"image": [{"bytes": by_chance, "path": "a.png"}]}), tmp_path / "clean" / "t.parquet")
    import numpy as np

    values = np.frombuffer(b"xCOMPRESSEDSAMPLES^CT1xx" * 4, dtype=np.float32)  # numbers whose bytes spell a name
    np.save(tmp_path / "clean" / "values.npy", values)
    assert b"COMPRESSEDSAMPLES^CT1" in (tmp_path / "clean" / "values.npy").read_bytes()
    assert scan_tree(tmp_path / "clean", names).ok
    for i, chunk in enumerate([(b"tEXt", b"Comment\0Patient COMPRESSEDSAMPLES^CT1"),
                               (b"zTXt", b"Comment\0\0" + zlib.compress(b"CompressedSamples^CT1")),
                               (b"iTXt", b"Author\0\0\0en\0\0COMPRESSEDSAMPLES^CT1")]):
        folder = tmp_path / f"bad{i}"
        folder.mkdir()
        (folder / "image.png").write_bytes(_png_with([(b"IHDR", ihdr), chunk, (b"IEND", b"")]))
        rep = scan_tree(folder, names)
        assert not rep.ok and rep.files_with_hits == ["image.png"], chunk[0]
