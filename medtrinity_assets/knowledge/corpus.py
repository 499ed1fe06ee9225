"""Reading knowledge corpora into documents: the bundled core corpus, MedRAG JSONL, plain JSONL, Markdown.

A corpus of millions of articles is streamed, never loaded whole. A malformed line or entry is
counted and described in the :class:`IngestReport` (file, line, what is wrong), never fatal: one
broken line in a 20 GB PubMed dump must not cost the other 23 million.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORE_REQUIRED = ("id", "title", "finding", "organ", "modalities", "appearance", "differential")
MAX_EXAMPLES = 20


@dataclass(frozen=True)
class Document:
    """One article/entry before chunking. ``text`` excludes the title; ``meta`` holds small facts."""

    doc_id: str
    title: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class IngestReport:
    """What a corpus read produced: documents read, bad entries counted, a few described."""

    documents: int = 0
    bad: int = 0
    files: int = 0
    examples: list[str] = field(default_factory=list)

    def reject(self, where: str, reason: str) -> None:
        self.bad += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {reason}")


class CorpusError(ValueError):
    """The corpus as a whole cannot be read (missing path, no files); names the path and what to do."""


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if found:
            return found
        raise CorpusError(f"{path}: no {'/'.join(suffixes)} files in this folder")
    raise CorpusError(f"{path}: corpus path does not exist; fix 'path' of the corpus in the sources YAML")


# ---- core -----------------------------------------------------------------------------------------------


def render_core_entry(entry: dict[str, Any]) -> str:
    """The passage body of a core entry: finding, appearance per modality, location, differential."""
    parts = [str(entry["finding"]).strip()]
    aliases = entry.get("aliases") or []
    if aliases:
        parts.append("Also called: " + ", ".join(map(str, aliases)) + ".")
    parts.append(f"Organ: {entry['organ']}. Imaged with: {', '.join(map(str, entry['modalities']))}.")
    for modality, text in entry["appearance"].items():
        parts.append(f"On {modality}: {str(text).strip()}")
    if entry.get("location"):
        parts.append(f"Typical location: {str(entry['location']).strip()}")
    diff = entry["differential"]
    if diff:
        parts.append("Differential: " + ", ".join(map(str, diff)) + ".")
    return " ".join(parts)


def validate_core_entry(entry: Any) -> str | None:
    """None when the entry is usable, else a sentence saying which field is wrong."""
    if not isinstance(entry, dict):
        return f"expected a mapping, got {type(entry).__name__}"
    missing = [k for k in CORE_REQUIRED if not entry.get(k) and k != "differential"]
    if "differential" not in entry:
        missing.append("differential")
    if missing:
        return f"missing field(s) {missing}"
    if not re.fullmatch(r"[a-z0-9_]+", str(entry["id"])):
        return f"id {entry['id']!r} must match [a-z0-9_]+"
    if not isinstance(entry["modalities"], list):
        return "field 'modalities' must be a list"
    app = entry["appearance"]
    if not isinstance(app, dict) or not all(isinstance(v, str) and v.strip() for v in app.values()):
        return "field 'appearance' must map each modality to a non-empty description"
    if not isinstance(entry["differential"], list):
        return "field 'differential' must be a list"
    return None


def _core_entries(file: Path, report: IngestReport) -> Iterator[tuple[str, Any]]:
    if file.suffix.lower() == ".jsonl":
        with file.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield f"{file.name}:{n}", json.loads(line)
                except json.JSONDecodeError as exc:
                    report.reject(f"{file}:{n}", f"not valid JSON ({exc.msg})")
        return
    import yaml

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        report.reject(str(file), f"not valid YAML: {exc}")
        return
    if not isinstance(data, list):
        report.reject(str(file), "expected a YAML list of entries at top level")
        return
    for n, entry in enumerate(data):
        yield f"{file.name}[{n}]", entry


def read_core(path: Path, report: IngestReport) -> Iterator[Document]:
    seen: set[str] = set()
    for file in _files(path, (".yaml", ".yml", ".jsonl")):
        report.files += 1
        for where, entry in _core_entries(file, report):
            problem = validate_core_entry(entry)
            if problem is None and entry["id"] in seen:
                problem = f"duplicate id {entry['id']!r}"
            if problem:
                report.reject(where, problem)
                continue
            seen.add(entry["id"])
            report.documents += 1
            meta = {
                "finding": entry["finding"].split(".")[0],
                "organ": entry["organ"],
                "modalities": list(entry["modalities"]),
                # a normal-study entry: retrieval keeps it away from samples that have a finding
                "normal": bool(entry.get("normal", str(entry["id"]).startswith("normal_"))),
                # the structure generation interprets measurements with (chunks may cut the text apart)
                "aliases": [str(a) for a in entry.get("aliases") or []],
                "appearance": {str(k): str(v).strip() for k, v in entry["appearance"].items()},
                "differential": [str(d) for d in entry.get("differential") or []],
            }
            yield Document(entry["id"], str(entry["title"]).strip(), render_core_entry(entry), meta)


# ---- JSONL (MedRAG and plain) -------------------------------------------------------------------------


def _jsonl_documents(path: Path, report: IngestReport, text_keys: tuple[str, ...]) -> Iterator[Document]:
    for file in _files(path, (".jsonl", ".json")):
        report.files += 1
        stem = file.stem
        with file.open(encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{file}:{n}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    report.reject(where, f"not valid JSON ({exc.msg})")
                    continue
                if not isinstance(obj, dict):
                    report.reject(where, "expected a JSON object per line")
                    continue
                key = next((k for k in text_keys if isinstance(obj.get(k), str) and obj[k].strip()), None)
                if key is None:
                    report.reject(where, f"no non-empty text field (one of {list(text_keys)})")
                    continue
                title = obj.get("title") if isinstance(obj.get("title"), str) else ""
                title, text = title.strip(), obj[key]
                # MedRAG's 'contents' is "<title>. <content>": keep the title once (it is prefixed again per chunk)
                if key == "contents" and title and text.startswith(title + "."):
                    text = text[len(title) + 1:]
                doc_id = obj.get("id") or obj.get("PMID") or f"{stem}-{n}"
                report.documents += 1
                yield Document(str(doc_id), title, text.strip())


def read_medrag(path: Path, report: IngestReport) -> Iterator[Document]:
    return _jsonl_documents(path, report, ("content", "contents"))


def read_jsonl(path: Path, report: IngestReport) -> Iterator[Document]:
    return _jsonl_documents(path, report, ("text", "content", "contents"))


# ---- Markdown --------------------------------------------------------------------------------------------

HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def split_markdown(text: str) -> list[tuple[str, str]]:
    """(heading path, body) per section; text before the first heading is a section titled ''."""
    sections: list[tuple[str, str]] = []
    stack: list[str] = []
    title, body = "", []
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        m = None if in_code else HEADING_RE.match(line)
        if m:
            if "\n".join(body).strip():
                sections.append((title, "\n".join(body).strip()))
            level = len(m.group(1))
            stack = stack[: level - 1] + [m.group(2).strip()]
            title, body = " > ".join(stack), []
        else:
            body.append(line)
    if "\n".join(body).strip():
        sections.append((title, "\n".join(body).strip()))
    return sections


def read_markdown(path: Path, report: IngestReport) -> Iterator[Document]:
    root = path if path.is_dir() else path.parent
    for file in _files(path, (".md", ".markdown")):
        report.files += 1
        rel = file.relative_to(root).as_posix()
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            report.reject(str(file), f"not UTF-8 text ({exc.reason}); convert the file to UTF-8")
            continue
        sections = split_markdown(text)
        if not sections:
            report.reject(str(file), "no text in this file")
        for i, (heading, body) in enumerate(sections):
            report.documents += 1
            yield Document(f"{rel}#{i}", heading or file.stem.replace("_", " "), body)


READERS = {"core": read_core, "medrag": read_medrag, "jsonl": read_jsonl, "markdown": read_markdown}


def read_corpus(fmt: str, path: Path, report: IngestReport | None = None) -> Iterator[Document]:
    """Stream the documents of a corpus; bad entries land in ``report``."""
    if fmt not in READERS:
        raise CorpusError(f"corpus format {fmt!r} is not one of {', '.join(READERS)}")
    return READERS[fmt](Path(path), report if report is not None else IngestReport())


def bundled_core_path() -> Path:
    """``data/knowledge`` of this repository (the core corpus ships with the code)."""
    return Path(__file__).resolve().parents[2] / "data" / "knowledge"
