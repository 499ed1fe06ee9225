"""Re-read exports the way their users do, beyond checksum equality: a file can hash right and still be
unreadable if the writer was wrong, point at a missing image, or put a subject in two splits.

- :func:`read_back_part`: one shard's part (``export_parts/<format>/<shard>/``);
- :func:`read_back_dataset`: one format's dataset folder (``exports/<format>/``), split by split;
- :func:`split_membership` / :func:`check_export_splits`: every record of every format, its split, and
  whether any subject appears in two splits in any format (or a record sits in another split's file).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tarfile
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtrinity_assets.quality.splits import SPLITS

_TAR_SPLIT = re.compile(r"^(train|validation|test)-")


def _tar_samples(path: Path) -> Iterator[tuple[str, set[str], dict[str, Any]]]:
    """(key, extensions, json metadata) per sample of a WebDataset tar."""
    parts: dict[str, set[str]] = defaultdict(set)
    meta: dict[str, dict[str, Any]] = {}
    with tarfile.open(path) as tar:
        for m in tar:
            key, _, ext = m.name.partition(".")
            parts[key].add(ext)
            if ext == "json":
                meta[key] = json.loads(tar.extractfile(m).read())
    for key, exts in parts.items():
        yield key, exts, meta.get(key, {})


def _coco_problems(folder: Path, ann_file: Path) -> tuple[int, list[str]]:
    from pycocotools.coco import COCO

    problems: list[str] = []
    with contextlib.redirect_stdout(io.StringIO()):  # COCO prints progress
        coco = COCO(str(ann_file))
    for img in coco.loadImgs(coco.getImgIds()):
        if not (folder / img["file_name"]).is_file():
            problems.append(f"{ann_file.name}: image {img['file_name']} missing")
    for ann in coco.loadAnns(coco.getAnnIds()):
        if coco.annToMask(ann).sum() == 0:
            problems.append(f"{ann_file.name}: annotation {ann['id']} has an empty mask")
    return len(coco.getImgIds()), problems


def _hf_problems(files: list[Path]) -> tuple[int, list[str]]:
    import pyarrow.parquet as pq

    problems, n = [], 0
    for f in files:
        t = pq.read_table(f)
        meta = (t.schema.metadata or {}).get(b"huggingface", b"{}")
        if '"Image"' not in meta.decode():
            problems.append(f"{f.name}: no Image feature in the huggingface metadata")
        for col in ("id", "image", "caption", "split"):
            if col not in t.column_names:
                problems.append(f"{f.name}: column {col} missing")
        if "image" in t.column_names:
            empty = sum(1 for v in t.column("image").to_pylist() if not (v and v.get("bytes")))
            if empty:
                problems.append(f"{f.name}: {empty} rows without image bytes")
        n += t.num_rows
    return n, problems


def _llava_problems(folder: Path, name: str, images: Path) -> tuple[int, list[str]]:
    problems = []
    recs = json.loads((folder / name).read_text(encoding="utf-8"))
    for r in recs:
        if not (images / r["image"]).is_file():
            problems.append(f"{name}: image {r['image']} missing")
        if not r.get("conversations") or not r["conversations"][0]["value"].startswith("<image>"):
            problems.append(f"{name}: record {r.get('id')} has no <image> turn")
    return len(recs), problems


def _tar_problems(files: list[Path]) -> tuple[int, list[str]]:
    problems, n = [], 0
    for tar_path in files:
        for key, exts, _ in _tar_samples(tar_path):
            n += 1
            if exts != {"png", "json", "txt"}:
                problems.append(f"{tar_path.name}: sample {key} has {sorted(exts)}")
    return n, problems


def read_back_part(fmt: str, folder: Path, data_root: Path) -> tuple[int, list[str]]:
    """(samples read, problems) for one shard's part; a loose-file format's images sit beside its records
    (hard links to the blobs under ``data_root``)."""
    folder = Path(folder)
    manifest = json.loads((folder / "part.json").read_text(encoding="utf-8"))
    problems: list[str] = []
    for rel, blob in manifest.get("images", {}).items():
        if not (folder / rel).is_file():
            problems.append(f"image {rel} missing")
        elif not (Path(data_root) / blob).is_file():
            problems.append(f"image {rel}: blob {blob} missing (the dataset merge links from the blobs)")
    if fmt == "hf":
        n, more = _hf_problems(sorted(folder.glob("*.parquet")))
    elif fmt == "webdataset":
        n, more = _tar_problems(sorted(folder.glob("*.tar")))
    elif fmt == "llava":
        n, more = 0, []
        for split in SPLITS:
            recs = json.loads((folder / f"{split}.json").read_text(encoding="utf-8"))
            n += len(recs)
            more += [f"{split}.json: record {r.get('id')} names no image of the part" for r in recs
                     if r["image"] not in manifest.get("images", {})]
    elif fmt == "coco":
        n = sum(len(json.loads((folder / f"{split}.json").read_text(encoding="utf-8"))["images"]) for split in SPLITS)
        more = []
    elif fmt == "vqa":
        lines = [json.loads(line) for line in (folder / "candidates.jsonl").read_text(encoding="utf-8").splitlines() if line]
        n, more = len(lines), []
    else:
        return 0, [f"unknown export format {fmt!r}"]
    if sum(manifest.get("samples", {}).values()) != n:
        more.append(f"part.json counts {sum(manifest.get('samples', {}).values())} samples, the files hold {n}")
    return n, problems + more


def read_back_dataset(fmt: str, folder: Path) -> tuple[dict[str, int], list[str]]:
    """(samples per split, problems) for one format's dataset folder, read as its users read it."""
    folder = Path(folder)
    per: dict[str, int] = {}
    problems: list[str] = []
    for split in SPLITS:
        if fmt == "hf":
            n, p = _hf_problems(sorted((folder / "data").glob(f"{split}-*.parquet")))
        elif fmt == "webdataset":
            n, p = _tar_problems(sorted(folder.glob(f"{split}-*.tar")))
        elif fmt == "llava":
            n, p = _llava_problems(folder, f"{split}.json", folder)
        elif fmt == "vqa":
            n, p = _llava_problems(folder, f"{split}_llava.json", folder)
            for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
                q = json.loads(line)
                if not (folder / q["image"]).is_file():
                    p.append(f"{split}.jsonl: image {q['image']} missing")
        elif fmt == "coco":
            n, p = _coco_problems(folder, folder / f"annotations_{split}.json")
        else:
            return {}, [f"unknown export format {fmt!r}"]
        per[split] = n
        problems += p
    return per, problems


# ---- splits across formats -------------------------------------------------------------------------------


@dataclass
class Membership:
    """Where each record of one format sits: sample id -> (split of its file, split field, subject or '')."""

    records: dict[str, tuple[str, str, str]] = field(default_factory=dict)


def split_membership(exports: Path) -> dict[str, Membership]:
    """Every record of every format under ``exports/`` (the dataset folders)."""
    exports = Path(exports)
    out: dict[str, Membership] = {}
    hf = exports / "hf" / "data"
    if hf.is_dir():
        import pyarrow.parquet as pq

        m = out.setdefault("hf", Membership())
        for f in sorted(hf.glob("*.parquet")):
            file_split = f.name.rsplit("-", 1)[0]
            for r in pq.read_table(f, columns=["id", "split", "subject_key"]).to_pylist():
                m.records[r["id"]] = (file_split, r["split"], r["subject_key"] or "")
    wds = exports / "webdataset"
    if wds.is_dir():
        m = out.setdefault("webdataset", Membership())
        for f in sorted(wds.glob("*.tar")):
            match = _TAR_SPLIT.match(f.name)
            for _, _, meta in _tar_samples(f):
                m.records[meta.get("id", "")] = (match.group(1) if match else "", meta.get("split", ""),
                                                 meta.get("subject_key", ""))
    for fmt, pattern in (("llava", "{}.json"), ("vqa", "{}_llava.json")):
        base = exports / fmt
        if base.is_dir():
            m = out.setdefault(fmt, Membership())
            for split in SPLITS:
                f = base / pattern.format(split)
                if f.is_file():
                    for r in json.loads(f.read_text(encoding="utf-8")):
                        m.records[r["id"]] = (split, r.get("split", ""), "")
    coco = exports / "coco"
    if coco.is_dir():
        m = out.setdefault("coco", Membership())
        for split in SPLITS:
            f = coco / f"annotations_{split}.json"
            if f.is_file():
                for img in json.loads(f.read_text(encoding="utf-8"))["images"]:
                    m.records[img["sample_id"]] = (split, img.get("split", ""), "")
    return out


@dataclass
class ExportSplitReport:
    records: dict[str, int]  # per format
    subjects_spanning_splits: int  # subjects whose records sit in two splits (any format, all formats together)
    records_in_wrong_file: list[str]  # "<format>: <id> is in <file split> but says <split>"
    records_disagreeing_across_formats: list[str]  # a sample in one split in one format and another elsewhere
    subjects_unknown: int  # records whose subject no format states

    @property
    def ok(self) -> bool:
        return not (self.subjects_spanning_splits or self.records_in_wrong_file
                    or self.records_disagreeing_across_formats)


def check_export_splits(membership: Mapping[str, Membership]) -> ExportSplitReport:
    subject_of: dict[str, str] = {}
    for m in membership.values():
        for sid, (_, _, subject) in m.records.items():
            if subject:
                subject_of[sid] = subject
    splits_of_subject: dict[str, set[str]] = defaultdict(set)
    split_of_sample: dict[str, set[str]] = defaultdict(set)
    wrong, unknown = [], 0
    for fmt, m in sorted(membership.items()):
        for sid, (file_split, field_split, _) in sorted(m.records.items()):
            if file_split != field_split:
                wrong.append(f"{fmt}: {sid} is in the {file_split or '?'} file but says {field_split or '?'}")
            split_of_sample[sid].add(file_split)
            subject = subject_of.get(sid)
            if subject:
                splits_of_subject[subject].add(file_split)
            else:
                unknown += 1
    disagree = [f"{sid}: {sorted(s)}" for sid, s in sorted(split_of_sample.items()) if len(s) > 1]
    return ExportSplitReport(
        records={fmt: len(m.records) for fmt, m in membership.items()},
        subjects_spanning_splits=sum(1 for s in splits_of_subject.values() if len(s) > 1),
        records_in_wrong_file=wrong, records_disagreeing_across_formats=disagree, subjects_unknown=unknown,
    )
