"""Cutting documents into passages of at most N tokens with an overlap, as the encoder counts tokens.

Chunks are cut on token boundaries but sliced from the original text by character offsets, so a
passage keeps its case and punctuation even when the tokenizer lower-cases. The encoder's fast
tokenizer (``tokenizer.json``) is used when the encoder folder has one; otherwise whitespace words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from medtrinity_assets.knowledge.corpus import Document

WORD_RE = re.compile(r"\S+")


class Tokenizer(Protocol):
    name: str

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of every token of ``text``."""


class WhitespaceTokenizer:
    name = "whitespace"

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in WORD_RE.finditer(text)]


class FastTokenizer:
    """A Hugging Face ``tokenizers`` tokenizer loaded from ``tokenizer.json`` (no torch, no model)."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer as HFTokenizer

        self._tok = HFTokenizer.from_file(str(path))
        self._tok.no_truncation()
        self._tok.no_padding()
        self.name = f"tokenizer.json@{path.parent.name}"

    def spans(self, text: str) -> list[tuple[int, int]]:
        enc = self._tok.encode(text, add_special_tokens=False)
        out: list[tuple[int, int]] = []
        for start, end in enc.offsets:
            if end <= start:
                continue
            # word pieces of one word share nothing; merge only exact duplicates (byte-level BPE quirks)
            if out and out[-1] == (start, end):
                continue
            out.append((start, end))
        return out


def tokenizer_for(encoder_path: Path | None) -> Tokenizer:
    """The encoder's own tokenizer when its folder has ``tokenizer.json``, else whitespace words."""
    if encoder_path is not None:
        candidate = Path(encoder_path) / "tokenizer.json"
        if candidate.is_file():
            try:
                json.loads(candidate.read_text(encoding="utf-8"))
                return FastTokenizer(candidate)
            except Exception:  # an unreadable tokenizer file falls back; the name says which one was used
                pass
    return WhitespaceTokenizer()


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    chunk_index: int
    title: str
    body: str
    n_tokens: int

    @property
    def text(self) -> str:
        """What gets embedded: the title in front of every chunk so each stands on its own."""
        return f"{self.title}. {self.body}" if self.title else self.body


def token_windows(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) token windows of ``size`` sharing ``overlap`` tokens; the last one ends at ``n``."""
    if n == 0:
        return []
    if n <= size:
        return [(0, n)]
    step = size - overlap
    windows = []
    start = 0
    while True:
        end = min(start + size, n)
        windows.append((start, end))
        if end == n:
            return windows
        start += step


def chunk_document(doc: Document, tokenizer: Tokenizer, chunk_tokens: int, overlap: int) -> list[Chunk]:
    spans = tokenizer.spans(doc.text)
    chunks = []
    for i, (a, b) in enumerate(token_windows(len(spans), chunk_tokens, overlap)):
        body = doc.text[spans[a][0] : spans[b - 1][1]].strip()
        chunks.append(Chunk(doc.doc_id, i, doc.title, body, b - a))
    return chunks


def chunk_documents(
    docs: Iterable[Document], tokenizer: Tokenizer, chunk_tokens: int, overlap: int
) -> Iterator[tuple[Document, Chunk]]:
    for doc in docs:
        for chunk in chunk_document(doc, tokenizer, chunk_tokens, overlap):
            yield doc, chunk


def passage_batches(corpus: str, docs: Iterable[Document], tokenizer: Tokenizer, chunk_tokens: int, overlap: int,
                    batch_rows: int = 20_000):
    """``passages`` rows (PASSAGE_SCHEMA) of a stream of documents as Arrow tables of at most ``batch_rows``."""
    import pyarrow as pa

    from medtrinity_assets.tables import PASSAGE_SCHEMA

    def empty() -> dict[str, list]:
        return {f.name: [] for f in PASSAGE_SCHEMA}

    cols = empty()
    seen: dict[str, int] = {}
    current = ""
    for doc, chunk in chunk_documents(docs, tokenizer, chunk_tokens, overlap):
        if chunk.chunk_index == 0:  # a repeated document id gets a suffix instead of colliding
            n = seen.get(doc.doc_id, 0)
            seen[doc.doc_id] = n + 1
            current = doc.doc_id if n == 0 else f"{doc.doc_id}~{n}"
        cols["corpus"].append(corpus)
        cols["passage_id"].append(f"{corpus}:{current}#{chunk.chunk_index}")
        cols["doc_id"].append(current)
        cols["chunk_index"].append(chunk.chunk_index)
        cols["title"].append(chunk.title)
        cols["text"].append(chunk.text)
        cols["n_tokens"].append(chunk.n_tokens)
        cols["meta_json"].append(json.dumps(doc.meta, sort_keys=True) if doc.meta else None)
        if len(cols["passage_id"]) >= batch_rows:
            yield pa.Table.from_pydict(cols, schema=PASSAGE_SCHEMA)
            cols = empty()
    if cols["passage_id"]:
        yield pa.Table.from_pydict(cols, schema=PASSAGE_SCHEMA)


def passages_table(corpus: str, docs: Iterable[Document], tokenizer: Tokenizer, chunk_tokens: int, overlap: int):
    """All ``passages`` rows of a stream of documents in one table (small corpora, the CLI, tests)."""
    import pyarrow as pa

    from medtrinity_assets.tables import PASSAGE_SCHEMA

    batches = list(passage_batches(corpus, docs, tokenizer, chunk_tokens, overlap))
    return pa.concat_tables(batches) if batches else PASSAGE_SCHEMA.empty_table()
