"""``vectors(ids)``: every index layout reads back what was upserted (the phased ranker's item vectors).

Checked against ``ExactIndex`` after the same history of upserts, deletes and re-upserts: found exactly
for the live ids, equal vectors for fp32 layouts, within the quantisation step for fp16 / int8.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from service.index.exact import ExactIndex
from service.index.faiss_index import FaissIndex
from service.index.funnel import MatryoshkaFunnelIndex

DIM = 48


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def history(index, seed: int = 5) -> np.ndarray:
    """Insert 1,000, delete 150, re-upsert 100 (50 of them deleted before), add 50; returns every id touched
    plus 20 never inserted."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**15, size=1_070, replace=False).astype(np.int64)
    index.upsert(ids[:1_000], unit_vectors(rng, 1_000))
    index.delete(ids[:150])
    moved = np.concatenate([ids[100:150], ids[500:550]])
    index.upsert(moved, unit_vectors(rng, len(moved)))
    index.upsert(ids[1_000:1_050], unit_vectors(rng, 50))
    return ids


LAYOUTS = {
    "faiss flat": (lambda: FaissIndex(DIM, kind="flat"), 1e-7),
    "faiss ivf": (lambda: FaissIndex(DIM, kind="ivf", nlist=8, nprobe=8), 1e-7),
    "faiss hnsw": (lambda: FaissIndex(DIM, kind="hnsw"), 1e-7),
    "funnel fp16": (lambda: MatryoshkaFunnelIndex(DIM, shortlist_dim=16, full_precision="fp16"), 1e-3),
    # int8 with one scale per vector: each component is off by at most half a step, peak / 254
    "funnel int8": (lambda: MatryoshkaFunnelIndex(DIM, shortlist_dim=16, full_precision="int8"), None),
    "funnel int8 over hnsw": (lambda: MatryoshkaFunnelIndex(DIM, shortlist_dim=16, kind="hnsw",
                                                            full_precision="int8"), None),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_vectors_read_back_what_was_upserted(layout: str) -> None:
    make, tolerance = LAYOUTS[layout]
    exact, index = ExactIndex(DIM), make()
    ids = history(exact)
    history(index)
    query = np.random.default_rng(0).permutation(ids)  # live, deleted, moved and never-inserted, shuffled
    want_found, want = exact.vectors(query)
    found, got = index.vectors(query)
    assert want_found.sum() == 1_000 - 150 + 50 + 50
    np.testing.assert_array_equal(found, want_found)
    assert got.dtype == np.float32 and got.shape == (len(query), DIM)
    assert not got[~found].any()  # absent ids read as zeros
    if tolerance is None:
        step = np.abs(want[found]).max(axis=1, keepdims=True) / 127.0
        assert np.all(np.abs(got[found] - want[found]) <= step / 2 + 1e-7)
    else:
        np.testing.assert_allclose(got[found], want[found], atol=tolerance)
    # what search scores with is what vectors returns: cosine of a stored vector with itself ≈ 1
    assert np.allclose(np.einsum("ij,ij->i", got[found], want[found]), 1.0, atol=5e-3)


def test_vectors_of_an_empty_or_untrained_index() -> None:
    for index in (FaissIndex(DIM, kind="ivf"), FaissIndex(DIM, kind="flat"), ExactIndex(DIM),
                  MatryoshkaFunnelIndex(DIM, shortlist_dim=16)):
        found, got = index.vectors(np.array([1, 2, 3]))
        assert not found.any() and got.shape == (3, DIM)


@pytest.mark.parametrize("layout", ["faiss flat", "faiss hnsw", "funnel int8"])
def test_reads_while_a_writer_thread_upserts_see_whole_vectors(layout: str) -> None:
    """A follower thread re-upserts the same ids with one of two vectors; a reader never sees a mix."""
    index = LAYOUTS[layout][0]()
    rng = np.random.default_rng(1)
    ids = np.arange(1, 201, dtype=np.int64)
    first, second = unit_vectors(rng, 200), unit_vectors(rng, 200)
    index.upsert(ids, first)
    stop = threading.Event()

    def writer() -> None:
        turn = 0
        while not stop.is_set():
            index.upsert(ids, second if turn % 2 else first)
            turn += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(200):
            found, got = index.vectors(ids)
            assert found.all()
            near_first = np.abs(got - first).max(axis=1) < 1e-2
            near_second = np.abs(got - second).max(axis=1) < 1e-2
            assert np.all(near_first | near_second)
    finally:
        stop.set()
        thread.join()
