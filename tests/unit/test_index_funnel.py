"""The Matryoshka funnel: short-cut ANN + full-dimension rescoring, checked against exact search."""

from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest

from service.index.exact import ExactIndex
from service.index.factory import index_layout, make_index, restorable, restore_index
from service.index.faiss_index import FaissIndex
from service.index.funnel import MatryoshkaFunnelIndex, shortlist_path
from service.matryoshka import matryoshka_cut
from service.settings import Settings

DIM, CUT = 64, 16


def matryoshka_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit vectors whose energy decays along the coordinates, as a Matryoshka-trained encoder's do."""
    v = rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(1 + np.arange(DIM, dtype=np.float32))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def churned(index, seed: int = 3) -> np.ndarray:
    """Insert 3,000, delete 400, move 300 (100 of them come back from the deleted), add 100; live ids."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**15, size=3_100, replace=False).astype(np.int64)
    index.upsert(ids[:3_000], matryoshka_like(rng, 3_000))
    index.delete(ids[:400])
    moved = np.concatenate([ids[300:400], ids[1_000:1_200]])
    index.upsert(moved, matryoshka_like(rng, len(moved)))
    index.upsert(ids[3_000:], matryoshka_like(rng, 100))
    return np.setdiff1d(ids, ids[:300])


def recall(expected: np.ndarray, got: np.ndarray) -> float:
    return float(np.mean([len(set(e) & set(g)) / len(e) for e, g in zip(expected, got)]))


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_funnel_recovers_what_the_bare_cut_misses(kind: str) -> None:
    exact, funnel = ExactIndex(DIM), MatryoshkaFunnelIndex(DIM, shortlist_dim=CUT, shortlist_factor=8, kind=kind,
                                                           nlist=16, nprobe=16, ef_search=128)
    live = churned(exact)
    churned(funnel)
    bare = FaissIndex(CUT)  # the bare short cut of the same live vectors, for comparison
    bare.upsert(exact._ids, matryoshka_cut(exact._vectors, CUT))

    assert len(funnel) == len(exact) == len(live) == 2_800
    queries = matryoshka_like(np.random.default_rng(9), 200)
    _, truth = exact.search(queries, 20)
    funnel_scores, funnel_ids = funnel.search(queries, 20)
    _, bare_ids = bare.search(matryoshka_cut(queries, CUT), 20)
    assert recall(truth, funnel_ids) >= 0.95
    assert recall(truth, bare_ids) < recall(truth, funnel_ids) - 0.1
    # scores are full-dimension inner products (fp16 storage), best first
    rows = {int(i): v for i, v in zip(exact._ids, exact._vectors)}
    expected = np.array([[queries[r] @ rows[int(i)] for i in funnel_ids[r]] for r in range(len(queries))])
    np.testing.assert_allclose(funnel_scores, expected, atol=2e-3)
    assert np.all(np.diff(funnel_scores, axis=1) <= 0)


def test_a_shortlist_of_everything_is_exact_search() -> None:
    exact, funnel = ExactIndex(DIM), MatryoshkaFunnelIndex(DIM, shortlist_dim=CUT, shortlist_factor=1_000)
    churned(exact)
    churned(funnel)
    queries = matryoshka_like(np.random.default_rng(4), 50)
    _, exact_ids = exact.search(queries, 10)
    _, funnel_ids = funnel.search(queries, 10)
    assert recall(exact_ids, funnel_ids) >= 0.99  # fp16 rounding may swap a near-tie at the 10th place


def test_deleted_and_moved_ids_follow_their_latest_write() -> None:
    funnel = MatryoshkaFunnelIndex(DIM, shortlist_dim=CUT)
    rng = np.random.default_rng(0)
    vectors = matryoshka_like(rng, 3)
    funnel.upsert(np.array([1, 2, 3]), vectors)
    assert funnel.delete(np.array([2, 99])) == 1
    funnel.upsert(np.array([3]), vectors[:1])  # 3 moves onto 1's vector
    scores, ids = funnel.search(vectors[:1], 5)
    assert sorted(ids[0, :2].tolist()) == [1, 3] and ids[0, 2:].tolist() == [-1, -1, -1]
    np.testing.assert_allclose(scores[0, :2], 1.0, atol=1e-3)
    assert len(funnel) == 2
    empty = MatryoshkaFunnelIndex(DIM, shortlist_dim=CUT)
    assert empty.search(vectors, 3)[1].tolist() == [[-1] * 3] * 3


def test_wrong_shapes_and_cuts_are_refused() -> None:
    with pytest.raises(ValueError, match="shortlist_dim"):
        MatryoshkaFunnelIndex(DIM, shortlist_dim=DIM)
    with pytest.raises(ValueError, match="shape"):
        MatryoshkaFunnelIndex(DIM, shortlist_dim=CUT).upsert(np.arange(2), np.zeros((2, CUT), np.float32))


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_snapshot_restores_both_parts(tmp_path, kind: str) -> None:
    funnel = MatryoshkaFunnelIndex(DIM, shortlist_dim=CUT, kind=kind, nlist=16, nprobe=16)
    churned(funnel)
    path = tmp_path / "items.faiss"
    funnel.snapshot(path, meta={"encoder": "encoder:9"})
    assert shortlist_path(path).exists()
    restored = MatryoshkaFunnelIndex.restore(path, nprobe=16)
    queries = matryoshka_like(np.random.default_rng(5), 20)
    np.testing.assert_array_equal(restored.search(queries, 10)[1], funnel.search(queries, 10)[1])
    assert (restored.kind, restored.shortlist_dim, len(restored)) == (kind, CUT, len(funnel))


def test_an_empty_snapshot_restores_with_its_kind(tmp_path) -> None:
    MatryoshkaFunnelIndex(DIM, shortlist_dim=CUT, kind="ivf").snapshot(tmp_path / "empty", meta={})
    restored = MatryoshkaFunnelIndex.restore(tmp_path / "empty")
    assert (restored.kind, len(restored)) == ("ivf", 0)
    restored.upsert(np.arange(50), matryoshka_like(np.random.default_rng(0), 50))  # IVF trains on its first batch
    assert len(restored) == 50 and restored.search(matryoshka_like(np.random.default_rng(1), 1), 3)[1][0, 0] >= 0


def test_a_torn_snapshot_is_refused(tmp_path) -> None:
    path = tmp_path / "items.faiss"
    funnel = MatryoshkaFunnelIndex(DIM, shortlist_dim=CUT)
    funnel.upsert(np.arange(10), matryoshka_like(np.random.default_rng(0), 10))
    funnel.snapshot(path, meta={})
    funnel.upsert(np.arange(10, 12), matryoshka_like(np.random.default_rng(1), 2))
    funnel.shortlist.snapshot(shortlist_path(path), meta={})  # the short part moved on without the rest
    with pytest.raises(ValueError, match="shortlist holds 12"):
        MatryoshkaFunnelIndex.restore(path)


def test_settings_choose_the_layout_and_a_snapshot_of_another_layout_is_rebuilt(tmp_path) -> None:
    funnel_settings = Settings(embedding_dim=DIM, index_shortlist_dim=CUT, index_kind="flat")
    plain_settings = Settings(embedding_dim=DIM, index_shortlist_dim=0, index_kind="flat")
    assert Settings(embedding_dim=64, index_shortlist_dim=64).funnel_dim is None
    assert isinstance(make_index(funnel_settings), MatryoshkaFunnelIndex)
    assert isinstance(make_index(plain_settings), FaissIndex)
    assert index_layout(funnel_settings) == "flat/16->64/int8" and index_layout(plain_settings) == "flat/64"

    index = make_index(funnel_settings)
    index.upsert(np.arange(5), matryoshka_like(np.random.default_rng(0), 5))
    path = tmp_path / "items.faiss"
    index.snapshot(path, meta={"encoder": "encoder:1", "layout": index_layout(funnel_settings)})
    assert restorable(funnel_settings, path, {"encoder": "encoder:1"})
    assert not restorable(funnel_settings, path, {"encoder": "encoder:2"})
    assert not restorable(plain_settings, path, {"encoder": "encoder:1"})
    assert len(restore_index(funnel_settings, path)) == 5


def test_start_up_restores_a_good_snapshot_and_rebuilds_a_torn_one_or_another_layout(tmp_path) -> None:
    from service.runtime import load_or_build_index

    builds = []

    def build():
        builds.append(1)
        return np.arange(40), matryoshka_like(np.random.default_rng(len(builds)), 40)

    funnel_settings = Settings(embedding_dim=DIM, index_shortlist_dim=CUT, state_dir=tmp_path)
    meta = {"encoder": "encoder:1"}
    first = load_or_build_index(funnel_settings, name="items", meta=meta, build=build)
    again = load_or_build_index(funnel_settings, name="items", meta=meta, build=build)
    assert len(builds) == 1 and len(again) == len(first) == 40

    first.shortlist.delete(np.arange(5))  # a crash after the short part was rewritten, before the rest
    first.shortlist.snapshot(shortlist_path(tmp_path / "items.faiss"), meta={})
    rebuilt = load_or_build_index(funnel_settings, name="items", meta=meta, build=build)
    assert len(builds) == 2 and len(rebuilt) == 40

    plain_settings = Settings(embedding_dim=DIM, index_shortlist_dim=0, state_dir=tmp_path)
    plain = load_or_build_index(plain_settings, name="items", meta=meta, build=build)
    assert len(builds) == 3 and isinstance(plain, FaissIndex)


def test_search_threads_apply_in_the_thread_that_searches() -> None:
    """OpenMP's thread count is per thread: a request thread that searches must get the setting, and 0 must
    leave FAISS's default alone."""
    vectors = matryoshka_like(np.random.default_rng(2), 50)
    seen = {}

    def search_in_a_new_thread(threads: int) -> int:
        index = make_index(Settings(embedding_dim=DIM, index_shortlist_dim=CUT, index_search_threads=threads))
        index.upsert(np.arange(50), vectors)
        worker = threading.Thread(target=lambda: (index.search(vectors[:1], 3),
                                                  seen.__setitem__(threads, faiss.omp_get_max_threads())))
        worker.start()
        worker.join()
        return seen[threads]

    untouched = threading.Thread(target=lambda: seen.__setitem__("default", faiss.omp_get_max_threads()))
    untouched.start()
    untouched.join()
    assert search_in_a_new_thread(1) == 1
    assert search_in_a_new_thread(0) == seen["default"]  # what any fresh thread gets: every core
