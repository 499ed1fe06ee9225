"""Approximate indexes against exact search on 100k synthetic vectors, and the size-based choice of kind."""

from __future__ import annotations

import numpy as np
import pytest

from medtrinity_assets.knowledge.index import VectorIndex, choose_kind
from medtrinity_assets.knowledge.settings import KnowledgeSettings
from medtrinity_assets_tests.support.knowledge import low_rank_vectors

N, DIM, QUERIES, K = 100_000, 64, 300, 10


@pytest.fixture(scope="module")
def data():
    x = low_rank_vectors(N, DIM, seed=1)
    q = low_rank_vectors(QUERIES, DIM, seed=2)
    exact = VectorIndex.create(DIM, N, KnowledgeSettings(), kind="exact")
    exact.add(x)
    _, truth = exact.search(q, K)
    return x, q, truth


def _recall(ids: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, truth)]))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_at_10(data, kind):
    x, q, truth = data
    # smaller HNSW graph than the defaults to keep the test fast; the defaults only raise recall
    settings = KnowledgeSettings(exact_max=1000, approximate=kind, hnsw_m=16, ef_construction=40, ef_search=64)
    index = VectorIndex.create(DIM, N, settings)
    assert index.kind == kind
    for start in range(0, N, 25_000):  # added in batches, as the asset does
        index.add(x[start:start + 25_000])
    index.finish()
    assert index.count == N
    _, ids = index.search(q, K)
    assert _recall(ids, truth) >= 0.95


def test_kind_follows_size():
    s = KnowledgeSettings(exact_max=500, approximate="ivf")
    assert choose_kind(500, s) == "exact" and choose_kind(501, s) == "ivf"
    assert choose_kind(10**6, KnowledgeSettings()) == "hnsw"


def test_ivf_trains_on_small_corpora_and_roundtrips(tmp_path):
    x = low_rank_vectors(300, 32, seed=3)
    index = VectorIndex.create(32, 300, KnowledgeSettings(exact_max=10, approximate="ivf", ivf_nlist=512))
    index.add(x)
    (tmp_path / "i.faiss").write_bytes(index.to_bytes())  # trains with fewer lists than asked
    assert index.params["nlist"] < 512
    again = VectorIndex.from_file(tmp_path / "i.faiss", "ivf", 32, index.params)
    s1, i1 = index.search(x[:5], 3)
    s2, i2 = again.search(x[:5], 3)
    assert np.array_equal(i1, i2) and i1[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_wrong_dimension_is_rejected():
    index = VectorIndex.create(8, 10, KnowledgeSettings())
    with pytest.raises(ValueError, match="shape"):
        index.add(np.zeros((2, 9), np.float32))
