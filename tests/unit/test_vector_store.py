"""The slot-vector store behind the flat index and the funnel: latest write wins, deletes keep rows packed,
the fp32 scan is exact, every precision round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from service.index.funnel import MatryoshkaFunnelIndex
from service.index.vector_store import SlotVectorStore

DIM = 32


def unit_vectors(seed: int, n: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize(("precision", "tolerance"), [("fp16", 1e-3), ("int8", 1e-2)])
def test_lookup_returns_the_latest_write_within_the_precision(precision: str, tolerance: float) -> None:
    store = SlotVectorStore(DIM, precision=precision, capacity=4)  # small, so the arrays grow
    first, second = unit_vectors(0, 3_000), unit_vectors(1, 1_000)
    ids = np.arange(3_000, dtype=np.int64) * 7 + 10**12
    store.upsert(ids, first)
    store.upsert(ids[:1_000], second)  # re-embedded items replace their rows in place
    assert len(store) == 3_000
    np.testing.assert_allclose(store.lookup(ids[:1_000]), second, atol=tolerance)
    np.testing.assert_allclose(store.lookup(ids[1_000:]), first[1_000:], atol=tolerance)
    # what rescoring needs: inner products with a unit query, to the stated error
    query = unit_vectors(2, 1)[0]
    error = np.abs(store.lookup(ids[1_000:]) @ query - first[1_000:] @ query)
    assert error.max() < (5e-3 if precision == "int8" else 1e-3) and error.mean() < tolerance / 5


def test_deletes_keep_the_rows_packed_and_unknown_ids_fail_loudly() -> None:
    store = SlotVectorStore(DIM)
    vectors = unit_vectors(3, 10)
    store.upsert(np.arange(10), vectors)
    assert store.delete(np.array([2, 9, 3, 99])) == 3  # 9 is the last row; 3's hole takes 8
    assert len(store) == 7 and store.nbytes() == 7 * (2 * DIM + 4 + 8)
    np.testing.assert_allclose(store.lookup(np.array([8, 7, 0])), vectors[[8, 7, 0]], atol=1e-3)
    store.upsert(np.array([20, 21]), vectors[:2])
    assert len(store) == 9
    np.testing.assert_allclose(store.lookup(np.array([21, 20, 8])), vectors[[1, 0, 8]], atol=1e-3)
    with pytest.raises(KeyError):
        store.lookup(np.array([2]))


def test_fp32_scan_equals_brute_force_through_a_history_of_writes() -> None:
    """What the flat index relies on: after any mix of upserts and deletes, the scan sees exactly the live
    vectors, each under its own id."""
    rng = np.random.default_rng(10)
    store, expected = SlotVectorStore(DIM, precision="fp32", capacity=8), {}
    for step in range(40):
        ids = rng.choice(300, size=int(rng.integers(1, 40)), replace=False).astype(np.int64)
        if step % 3 == 2:
            store.delete(ids)
            for item in ids.tolist():
                expected.pop(item, None)
        else:
            vectors = unit_vectors(100 + step, len(ids))
            store.upsert(ids, vectors)
            expected.update(zip(ids.tolist(), vectors))
    assert len(store) == len(expected)
    live_ids = np.array(sorted(expected))
    live = np.stack([expected[i] for i in live_ids.tolist()])
    queries = unit_vectors(99, 20)
    scores, ids = store.search(queries, 7)
    brute = queries @ live.T
    order = np.argsort(-brute, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(ids, live_ids[order])
    np.testing.assert_allclose(scores, np.take_along_axis(brute, order, axis=1), atol=1e-5)
    np.testing.assert_array_equal(store.lookup(live_ids), live)
    _, few = store.search(queries[:1], len(expected) + 3)  # more than it holds: padded with -1
    assert (few[0, len(expected):] == -1).all() and set(few[0, : len(expected)].tolist()) == set(expected)


def test_only_fp32_stores_scan() -> None:
    store = SlotVectorStore(DIM, precision="int8")
    store.upsert(np.arange(3), unit_vectors(11, 3))
    with pytest.raises(TypeError, match="fp32"):
        store.search(unit_vectors(12, 1), 2)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_bytes_keep_only_live_rows_and_round_trip(precision: str) -> None:
    store = SlotVectorStore(DIM, precision=precision)
    store.upsert(np.arange(100), unit_vectors(4, 100))
    store.delete(np.arange(0, 100, 2))
    restored = SlotVectorStore.from_bytes(store.to_bytes(), DIM)
    assert (len(restored), restored.precision) == (50, precision)
    live = np.arange(1, 100, 2)
    np.testing.assert_array_equal(restored.lookup(live), store.lookup(live))
    restored.upsert(np.array([1_000]), unit_vectors(5, 1))  # a restored store keeps taking writes
    assert len(restored) == 51


def test_foreign_or_mismatched_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="not a slot-vector snapshot"):
        SlotVectorStore.from_bytes(b"FAISS index bytes from an older layout", DIM)
    store = SlotVectorStore(DIM)
    store.upsert(np.arange(3), unit_vectors(6, 3))
    with pytest.raises(ValueError, match="expected width 64"):
        SlotVectorStore.from_bytes(store.to_bytes(), 64)
    with pytest.raises(ValueError, match="unknown precision"):
        SlotVectorStore(DIM, precision="bf16")


def test_an_int8_funnel_ranks_like_the_fp16_one_in_half_the_memory(tmp_path) -> None:
    rng = np.random.default_rng(7)
    ids = rng.choice(10**15, size=2_000, replace=False).astype(np.int64)
    vectors, queries = unit_vectors(8, 2_000), unit_vectors(9, 50)
    funnels = {p: MatryoshkaFunnelIndex(DIM, shortlist_dim=8, shortlist_factor=100, full_precision=p)
               for p in ("fp16", "int8")}
    for funnel in funnels.values():
        funnel.upsert(ids, vectors)
    fp16_ids, int8_ids = funnels["fp16"].search(queries, 10)[1], funnels["int8"].search(queries, 10)[1]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(fp16_ids, int8_ids)])
    assert overlap >= 0.95  # only near-ties at the 10th place may swap
    # 1 B instead of 2 per dimension; the per-slot id and scale (12 B) weigh more at 32-d than at 384-d (0.51)
    assert funnels["int8"]._full.nbytes() < 0.6 * funnels["fp16"]._full.nbytes()
    funnels["int8"].snapshot(tmp_path / "items", meta={})
    restored = MatryoshkaFunnelIndex.restore(tmp_path / "items", shortlist_factor=100)
    assert restored._full.precision == "int8"
    np.testing.assert_array_equal(restored.search(queries, 10)[1], int8_ids)
