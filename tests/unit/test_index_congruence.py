"""Congruence of every FAISS kind with the exact numpy index under the same upserts and deletes."""

from __future__ import annotations

import numpy as np
import pytest

from service.index.exact import ExactIndex
from service.index.faiss_index import FaissIndex

DIM = 32


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def apply_history(index, rng: np.random.Generator) -> None:
    """Insert 2,000, delete 300, re-upsert 200 moved vectors (some deleted ids come back), add 100 new."""
    ids = rng.choice(10**15, size=2_400, replace=False).astype(np.int64)
    index.upsert(ids[:2_000], unit_vectors(rng, 2_000))
    index.delete(ids[:300])
    moved = np.concatenate([ids[200:300], ids[1_000:1_100]])  # 100 deleted ones return, 100 live ones move
    index.upsert(moved, unit_vectors(rng, len(moved)))
    index.upsert(ids[2_000:2_100], unit_vectors(rng, 100))
    index.delete(np.array([ids[2_399]]))  # never inserted: a no-op


def recall(expected: np.ndarray, got: np.ndarray) -> float:
    """Mean fraction of each row's expected ids that were found."""
    return float(np.mean([len(set(e) & set(g)) / len(e) for e, g in zip(expected, got)]))


def build_pair(kind: str, seed: int = 7):
    exact, approx = ExactIndex(DIM), FaissIndex(DIM, kind=kind, nlist=16, nprobe=16, ef_search=128)
    apply_history(exact, np.random.default_rng(seed))
    apply_history(approx, np.random.default_rng(seed))
    return exact, approx


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_sizes_follow_upserts_and_deletes(kind: str) -> None:
    exact, approx = build_pair(kind)
    assert len(exact) == 2_000 - 300 + 100 + 100 == len(approx)


def test_flat_top_k_equals_exact() -> None:
    exact, flat = build_pair("flat")
    queries = unit_vectors(np.random.default_rng(1), 50)
    exact_scores, exact_ids = exact.search(queries, 10)
    flat_scores, flat_ids = flat.search(queries, 10)
    np.testing.assert_array_equal(flat_ids, exact_ids)
    np.testing.assert_allclose(flat_scores, exact_scores, atol=1e-5)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_kinds_recall_exact_top_k(kind: str) -> None:
    exact, approx = build_pair(kind)
    queries = unit_vectors(np.random.default_rng(2), 100)
    _, exact_ids = exact.search(queries, 10)
    _, approx_ids = approx.search(queries, 10)
    assert recall(exact_ids, approx_ids) >= 0.95


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_deleted_and_replaced_vectors_are_never_returned(kind: str) -> None:
    index = FaissIndex(DIM, kind=kind, nlist=4, nprobe=4)
    rng = np.random.default_rng(3)
    vectors = unit_vectors(rng, 200)
    index.upsert(np.arange(200), vectors)
    index.delete(np.array([5]))
    index.upsert(np.array([6]), -vectors[6:7])  # id 6 now points the other way
    _, ids = index.search(vectors[5:7], 3)
    assert 5 not in ids[0] and ids[1][0] != 6
    _, own = index.search(-vectors[6:7], 1)
    assert own[0][0] == 6


def test_hnsw_compact_keeps_results_and_drops_tombstones() -> None:
    exact, hnsw = build_pair("hnsw")
    queries = unit_vectors(np.random.default_rng(4), 50)
    before = hnsw.search(queries, 10)[1]
    hnsw.compact()
    assert len(hnsw) == len(exact) and hnsw._index.ntotal == len(exact)
    assert recall(before, hnsw.search(queries, 10)[1]) >= 0.95


def test_search_on_empty_index_returns_missing_slots() -> None:
    for kind in ("flat", "ivf", "hnsw"):
        _, ids = FaissIndex(DIM, kind=kind).search(unit_vectors(np.random.default_rng(0), 2), 5)
        assert ids.shape == (2, 5) and (ids == -1).all()


def test_upsert_rejects_wrong_dimension() -> None:
    with pytest.raises(ValueError, match="shape"):
        FaissIndex(DIM).upsert(np.arange(3), np.zeros((3, DIM + 1), np.float32))
