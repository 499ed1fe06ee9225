"""Vector indexes over passage embeddings: exact for small corpora, approximate (HNSW or IVF) for large.

Vectors are L2-normalised, so inner product is cosine similarity. A corpus index is a folder::

    knowledge/<corpus>/index.faiss      the FAISS index (flat, HNSW or IVF)
    knowledge/<corpus>/passages.parquet passage rows in index order (row i = vector i)
    knowledge/<corpus>/manifest.json    encoder id, dim, count, kind, parameters, passages digest

Reloading reads these three files; nothing is re-embedded. See README.md for why these index kinds.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from medtrinity_assets.knowledge.settings import KnowledgeSettings
from medtrinity_assets.storage import atomic_write_bytes, atomic_write_text, temp_file_beside

INDEX_FILE = "index.faiss"
PASSAGES_FILE = "passages.parquet"
MANIFEST_FILE = "manifest.json"


class KnowledgeIndexError(RuntimeError):
    """An index folder that is missing, incomplete, or built with another encoder than the one in use."""


def choose_kind(count: int, settings: KnowledgeSettings) -> str:
    return "exact" if count <= settings.exact_max else settings.approximate


class VectorIndex:
    """A FAISS index of one kind with add/search and the parameters that matter for recall."""

    def __init__(self, faiss_index: Any, kind: str, dim: int, params: dict[str, Any]):
        self.index = faiss_index
        self.kind = kind
        self.dim = dim
        self.params = params
        self._pending: list[np.ndarray] = []  # IVF vectors held until there are enough to train

    @classmethod
    def create(cls, dim: int, expected_count: int, settings: KnowledgeSettings, kind: str | None = None) -> VectorIndex:
        import faiss

        kind = kind or choose_kind(expected_count, settings)
        if kind == "exact":
            return cls(faiss.IndexFlatIP(dim), kind, dim, {})
        if kind == "hnsw":
            idx = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = settings.ef_construction
            idx.hnsw.efSearch = settings.ef_search
            return cls(idx, kind, dim, {"m": settings.hnsw_m, "ef_construction": settings.ef_construction,
                                        "ef_search": settings.ef_search})
        if kind == "ivf":
            nlist = settings.ivf_nlist or max(1, round(math.sqrt(max(expected_count, 1))))
            quantizer = faiss.IndexFlatIP(dim)
            idx = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            idx.nprobe = min(settings.ivf_nprobe, nlist)
            vi = cls(idx, kind, dim, {"nlist": nlist, "nprobe": idx.nprobe})
            vi._quantizer = quantizer  # keep the quantizer alive as long as the index
            return vi
        raise ValueError(f"unknown index kind {kind!r}")

    @property
    def count(self) -> int:
        return int(self.index.ntotal) + sum(len(p) for p in self._pending)

    def add(self, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        if self.kind == "ivf" and not self.index.is_trained:
            self._pending.append(vectors)
            if sum(len(p) for p in self._pending) >= 40 * self.params["nlist"]:
                self._train_and_flush()
            return
        self.index.add(vectors)

    def _train_and_flush(self) -> None:
        data = np.concatenate(self._pending) if self._pending else np.zeros((0, self.dim), np.float32)
        self._pending = []
        if len(data) == 0:
            return
        nlist = self.params["nlist"]
        if len(data) < nlist:  # too few vectors for the planned lists: shrink so training is valid
            import faiss

            nlist = max(1, len(data) // 4 or 1)
            quantizer = faiss.IndexFlatIP(self.dim)
            self.index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self._quantizer = quantizer
            self.params = {"nlist": nlist, "nprobe": min(self.params["nprobe"], nlist)}
            self.index.nprobe = self.params["nprobe"]
        rng = np.random.default_rng(0)
        sample = data if len(data) <= 256 * nlist else data[rng.choice(len(data), 256 * nlist, replace=False)]
        self.index.train(sample)
        self.index.add(data)

    def finish(self) -> None:
        """Train an IVF index that never reached its training size; a no-op for other kinds."""
        if self.kind == "ivf" and not self.index.is_trained:
            self._train_and_flush()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, row ids), best first; ids are -1 where fewer than k vectors exist."""
        self.finish()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.index.ntotal == 0 or len(queries) == 0:
            return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        return self.index.search(queries, k)

    def to_bytes(self) -> bytes:
        import faiss

        self.finish()
        return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_file(cls, path: Path, kind: str, dim: int, params: dict[str, Any]) -> VectorIndex:
        import faiss

        idx = faiss.read_index(str(path))
        if kind == "hnsw":
            idx.hnsw.efSearch = params.get("ef_search", idx.hnsw.efSearch)
        if kind == "ivf":
            idx.nprobe = params.get("nprobe", idx.nprobe)
        return cls(idx, kind, dim, params)


@dataclass(frozen=True)
class IndexManifest:
    corpus: str
    encoder: str
    dim: int
    count: int
    kind: str
    params: dict[str, Any]
    passages_sha256: str
    chunking: dict[str, Any]

    @property
    def data_version(self) -> str:
        """Changes when the encoder, the passages or the index kind/parameters change."""
        key = json.dumps([self.encoder, self.passages_sha256, self.kind, self.params], sort_keys=True)
        return f"{self.encoder}|{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def read_manifest(folder: Path) -> IndexManifest:
    mpath = folder / MANIFEST_FILE
    if not mpath.is_file():
        raise KnowledgeIndexError(f"{folder}: no {MANIFEST_FILE}; materialise knowledge_index for this corpus")
    return IndexManifest(**json.loads(mpath.read_text(encoding="utf-8")))


@dataclass
class CorpusIndex:
    """A loaded corpus index: vectors, the passage rows in the same order, and the manifest."""

    manifest: IndexManifest
    vectors: VectorIndex
    passages: pa.Table  # passage_id, title, text, corpus (+ others), row i = vector i

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        pq.write_table(self.passages, buf, compression="zstd")
        atomic_write_bytes(folder / PASSAGES_FILE, buf.getvalue())
        atomic_write_bytes(folder / INDEX_FILE, self.vectors.to_bytes())
        # the manifest last: its presence marks a complete folder
        atomic_write_text(folder / MANIFEST_FILE, json.dumps(asdict(self.manifest), indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> CorpusIndex:
        manifest = read_manifest(folder)
        vectors = VectorIndex.from_file(folder / INDEX_FILE, manifest.kind, manifest.dim, manifest.params)
        passages = pq.read_table(folder / PASSAGES_FILE)
        if vectors.count != manifest.count or passages.num_rows != manifest.count:
            raise KnowledgeIndexError(
                f"{folder}: manifest says {manifest.count} passages but the index holds {vectors.count} and the "
                f"table {passages.num_rows}; rematerialise knowledge_index for corpus {manifest.corpus!r}"
            )
        return cls(manifest, vectors, passages)


def _digest_update(h: hashlib._Hash, table: pa.Table) -> None:
    names = [c for c in ("passage_id", "title", "text", "meta_json") if c in table.column_names]
    for batch in table.select(names).to_batches(max_chunksize=8192):
        for values in zip(*(batch.column(i).to_pylist() for i in range(len(names)))):
            for v in values:
                h.update((v or "").encode())
                h.update(b"\0")


def table_digest(table: pa.Table) -> str:
    """sha256 of the passage rows in order (ids, titles, texts, metadata): what the index folder holds."""
    h = hashlib.sha256()
    _digest_update(h, table)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """:func:`table_digest` of a passages Parquet file, read batch by batch."""
    h = hashlib.sha256()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
        _digest_update(h, pa.Table.from_batches([batch]))
    return h.hexdigest()


def write_passages(path: Path, batches: Iterable[pa.Table]) -> tuple[int, str]:
    """Stream passage tables into one Parquet file (temporary file, then rename); returns (rows, digest)."""
    import os

    from medtrinity_assets.tables import PASSAGE_SCHEMA

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)  # the umask's mode (mkstemp's 0600 would survive the rename)
    os.close(fd)
    rows, h = 0, hashlib.sha256()
    try:
        with pq.ParquetWriter(str(tmp), PASSAGE_SCHEMA, compression="zstd") as writer:
            for table in batches:
                writer.write_table(table)
                _digest_update(h, table)
                rows += table.num_rows
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return rows, h.hexdigest()


def build_corpus_index(
    corpus: str, passages: pa.Table, encoder: Any, settings: KnowledgeSettings, chunking: dict[str, Any] | None = None,
    batch_rows: int = 4096,
) -> CorpusIndex:
    """Embed the passage texts batch by batch into an index of the kind the corpus size calls for."""
    vectors = VectorIndex.create(encoder.dim, passages.num_rows, settings)
    texts = passages.column("text")
    for start in range(0, passages.num_rows, batch_rows):
        vectors.add(encoder.encode(texts.slice(start, batch_rows).to_pylist()))
    vectors.finish()
    manifest = IndexManifest(
        corpus=corpus,
        encoder=encoder.id,
        dim=encoder.dim,
        count=passages.num_rows,
        kind=vectors.kind,
        params=vectors.params,
        passages_sha256=table_digest(passages),
        chunking=dict(chunking or {}),
    )
    return CorpusIndex(manifest, vectors, passages)


def build_index_folder(
    corpus: str, passages_path: Path, folder: Path, encoder: Any, settings: KnowledgeSettings,
    chunking: dict[str, Any] | None = None, batch_rows: int = 4096,
) -> IndexManifest:
    """Embed a passages Parquet file batch by batch into ``folder`` without holding the corpus in memory."""
    import os
    import shutil

    pfile = pq.ParquetFile(passages_path)
    count = pfile.metadata.num_rows
    vectors = VectorIndex.create(encoder.dim, count, settings)
    h = hashlib.sha256()
    for batch in pfile.iter_batches(batch_size=batch_rows):
        table = pa.Table.from_batches([batch])
        vectors.add(encoder.encode(table.column("text").to_pylist()))
        _digest_update(h, table)
    vectors.finish()
    manifest = IndexManifest(corpus=corpus, encoder=encoder.id, dim=encoder.dim, count=count, kind=vectors.kind,
                             params=vectors.params, passages_sha256=h.hexdigest(), chunking=dict(chunking or {}))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_FILE).unlink(missing_ok=True)  # incomplete until the new manifest is written
    fd, tmp = temp_file_beside(folder / PASSAGES_FILE)
    os.close(fd)
    shutil.copyfile(passages_path, tmp)
    os.replace(tmp, folder / PASSAGES_FILE)
    atomic_write_bytes(folder / INDEX_FILE, vectors.to_bytes())
    atomic_write_text(folder / MANIFEST_FILE, json.dumps(asdict(manifest), indent=2, sort_keys=True))
    return manifest


def corpus_index_folders(knowledge_root: Path) -> list[Path]:
    """Folders under ``knowledge/`` holding a complete index (manifest written), sorted by name."""
    if not knowledge_root.is_dir():
        return []
    return sorted(p for p in knowledge_root.iterdir() if (p / MANIFEST_FILE).is_file())


def index_is_current(folder: Path, passages: pa.Table | Path, encoder_id_: str, settings: KnowledgeSettings) -> bool:
    """True when ``folder`` already indexes exactly these passages (a table or a Parquet file) with this
    encoder and index plan."""
    mpath = folder / MANIFEST_FILE
    if not mpath.is_file() or not (folder / INDEX_FILE).is_file():
        return False
    try:
        manifest = IndexManifest(**json.loads(mpath.read_text(encoding="utf-8")))
    except (ValueError, TypeError):
        return False
    count = pq.ParquetFile(passages).metadata.num_rows if isinstance(passages, Path) else passages.num_rows
    planned = choose_kind(count, settings)
    if manifest.kind != planned or manifest.encoder != encoder_id_ or manifest.count != count:
        return False
    if planned == "hnsw" and manifest.params.get("m") != settings.hnsw_m:
        return False
    digest = file_digest(passages) if isinstance(passages, Path) else table_digest(passages)
    return manifest.passages_sha256 == digest
