"""The Milvus backend (``service/index/milvus_index.py``) against the FAISS backend and the numpy reference.

Milvus Lite runs embedded (a ``.db`` path in a temp dir), the real engine the backend talks to, not a fake.
The same churned history (bulk build, NRT-sized upserts, re-embedded items, deletes, re-inserts, deletes of
absent ids) goes to each index, and each must then answer the same: the plain layout the same ids as
``ExactIndex``, the 64-d funnel the same ids as the FAISS funnel with float32 full vectors, and ≥ 0.95 of the
served FAISS layout's (int8 full vectors) top 10. Then persistence (snapshot = flush + sidecar, restore
reopens the collection), the settings seam (``make_index``, ``load_or_build_index``) and the replica
follower writing through it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.catalogue import stable_id
from service.index.exact import ExactIndex
from service.index.factory import index_layout, make_index
from service.index.funnel import MatryoshkaFunnelIndex
from service.index.milvus_index import MilvusIndex, client_for
from service.runtime import load_or_build_index
from service.settings import Settings
from service.store.base import ItemDocument
from service.stream.vector_log import VectorRecord
from tests.unit.test_runtime_apply import DIM, HashEncoder
from tests.unit.test_searchable import follower, raw

FULL, SHORT, N, K = 384, 64, 2000, 10


def unit(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)


def matryoshka_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit vectors whose first 64 dimensions carry most of the norm, as a Matryoshka student's do (on plain
    random vectors a 64-d shortlist would be noise and every funnel would miss)."""
    m = rng.standard_normal((n, FULL))
    m[:, :SHORT] *= 3
    return unit(m)


def churn(indexes: list, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, set[int], list[list[int]]]:
    """Apply one history to every index; returns (ids, current vectors, deleted ids, each delete's counts)."""
    ids = rng.choice(2**62, N, replace=False).astype(np.int64)
    vectors = matryoshka_like(rng, N)
    ops: list[tuple] = [("upsert", np.arange(0, 1500))]  # the start-up build
    ops += [("upsert", chunk) for chunk in np.array_split(np.arange(1500, N), 5)]  # new items, ~100 a batch
    changed = rng.choice(1500, 300, replace=False)
    deleted = rng.choice(np.setdiff1d(np.arange(N), changed), 200, replace=False)
    back = deleted[:50]
    fresh = matryoshka_like(rng, N)
    ops += [("replace", chunk) for chunk in np.array_split(changed, 3)]
    ops += [("delete", chunk) for chunk in np.array_split(deleted, 2)]
    ops += [("replace", back), ("delete", deleted[150:]), ("absent", None)]
    counts: list[list[int]] = []
    for op, rows in ops:
        if op == "replace":
            vectors[rows] = fresh[rows]
        for index in indexes:
            if op in ("upsert", "replace"):
                index.upsert(ids[rows], vectors[rows])
        if op == "delete":
            counts.append([index.delete(ids[rows]) for index in indexes])
        elif op == "absent":
            counts.append([index.delete(np.array([1, 2, 3], dtype=np.int64)) for index in indexes])
    gone = {int(i) for i in ids[deleted[50:]]}
    return ids, vectors, gone, counts


def queries_near(rng: np.random.Generator, vectors: np.ndarray, n: int = 60) -> np.ndarray:
    rows = rng.choice(len(vectors), n, replace=False)
    return unit(vectors[rows] + 0.03 * rng.standard_normal((n, FULL)))


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x[x >= 0].tolist()) & set(y[y >= 0].tolist())) / len(x) for x, y in zip(a, b)]))


@pytest.fixture
def lite(tmp_path: Path) -> str:
    return str(tmp_path / "milvus.db")


def test_plain_layout_answers_as_exact_search_after_churn(lite: str) -> None:
    rng = np.random.default_rng(1)
    milvus, exact = MilvusIndex(FULL, uri=lite, collection="plain"), ExactIndex(FULL)
    ids, vectors, gone, counts = churn([milvus, exact], rng)
    assert all(a == b for a, b in counts) and counts[-1] == [0, 0]
    assert len(milvus) == len(exact) == N - 150
    queries = queries_near(rng, vectors)
    (ms, mi), (es, ei) = milvus.search(queries, K), exact.search(queries, K)
    assert np.array_equal(mi, ei)
    np.testing.assert_allclose(ms, es, atol=1e-5)
    assert not gone & set(mi.ravel().tolist())
    found, held = milvus.vectors(ids)
    exact_found, exact_held = exact.vectors(ids)
    assert np.array_equal(found, exact_found) and found.sum() == N - 150
    np.testing.assert_allclose(held, exact_held, atol=1e-6)  # the replaced vectors, not the first ones


def test_funnel_answers_as_the_faiss_funnel_after_churn(lite: str) -> None:
    rng = np.random.default_rng(2)
    milvus = MilvusIndex(FULL, uri=lite, collection="funnel", shortlist_dim=SHORT, shortlist_factor=8)
    same = MatryoshkaFunnelIndex(FULL, shortlist_dim=SHORT, shortlist_factor=8, full_precision="fp32")
    served = MatryoshkaFunnelIndex(FULL, shortlist_dim=SHORT, shortlist_factor=8, full_precision="int8")
    ids, vectors, gone, counts = churn([milvus, same, served], rng)
    assert all(len(set(c)) == 1 for c in counts)
    assert len(milvus) == len(same) == len(served) == N - 150
    queries = queries_near(rng, vectors)
    (ms, mi), (fs, fi), (_, si) = milvus.search(queries, K), same.search(queries, K), served.search(queries, K)
    assert np.array_equal(mi, fi)  # same shortlist, same full-width rescore
    np.testing.assert_allclose(ms, fs, atol=1e-5)
    assert overlap(mi, si) >= 0.95  # against the served layout: only int8 rounding differs
    assert not gone & set(mi.ravel().tolist())
    # the funnel matters: the 64-d shortlist alone orders differently from the full-width rescore
    plain = MilvusIndex(SHORT, uri=lite, collection="cut_only")
    plain.upsert(*milvus_live(milvus, ids))
    _, cut_ids = plain.search(unit(queries[:, :SHORT]), K)
    assert overlap(cut_ids, mi) < 0.99


def milvus_live(index: MilvusIndex, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    found, held = index.vectors(ids)
    return ids[found], unit(held[found][:, :SHORT])


def test_search_on_an_empty_index_and_k_beyond_its_size(lite: str) -> None:
    index = MilvusIndex(FULL, uri=lite, collection="small", shortlist_dim=SHORT)
    scores, found = index.search(unit(np.ones((2, FULL))), 5)
    assert (found == -1).all() and (scores == 0).all() and len(index) == 0
    rng = np.random.default_rng(3)
    index.upsert(np.array([7, 8, 9]), matryoshka_like(rng, 3))
    _, found = index.search(matryoshka_like(rng, 1), 5)
    assert sorted(found[0, :3].tolist()) == [7, 8, 9] and (found[0, 3:] == -1).all()
    with pytest.raises(ValueError, match="shape"):
        index.upsert(np.array([1]), np.ones((1, SHORT), np.float32))


def test_snapshot_flushes_and_restore_reopens_the_collection(lite: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    index = MilvusIndex(FULL, uri=lite, collection="snap", shortlist_dim=SHORT, flush_rows=10**9)
    ids, vectors = np.arange(300, dtype=np.int64), matryoshka_like(rng, 300)
    index.upsert(ids, vectors)
    index.snapshot(tmp_path / "items.faiss", meta={"encoder": "e:1"})
    back = MilvusIndex.restore(tmp_path / "items.faiss", uri=lite)
    queries = queries_near(rng, vectors, 20)
    assert back.collection == "snap" and back.shortlist_dim == SHORT and len(back) == 300
    assert np.array_equal(back.search(queries, K)[1], index.search(queries, K)[1])
    with pytest.raises(ValueError, match="not at"):
        MilvusIndex.restore(tmp_path / "items.faiss", uri=str(tmp_path / "other.db"))
    index.drop()
    with pytest.raises(ValueError, match="does not exist"):
        MilvusIndex.restore(tmp_path / "items.faiss", uri=lite)


def milvus_settings(tmp_path: Path, **overrides) -> Settings:
    return Settings(**({"index_backend": "milvus", "milvus_uri": str(tmp_path / "milvus.db"), "state_dir": tmp_path,
                        "milvus_collection": "t"} | overrides))


def test_settings_choose_milvus_and_start_up_restores_instead_of_rebuilding(tmp_path: Path) -> None:
    settings = milvus_settings(tmp_path)
    rng = np.random.default_rng(5)
    ids, vectors = np.arange(500, dtype=np.int64), matryoshka_like(rng, 500)
    builds = []

    def build():
        builds.append(1)
        return ids, vectors

    first = load_or_build_index(settings, name="items", meta={"encoder": "e:1"}, build=build)
    assert isinstance(first, MilvusIndex) and first.shortlist_dim == SHORT and index_layout(settings).startswith("milvus")
    again = load_or_build_index(settings, name="items", meta={"encoder": "e:1"}, build=build)
    assert builds == [1] and again.collection == first.collection and len(again) == 500
    queries = queries_near(rng, vectors, 10)
    assert np.array_equal(again.search(queries, K)[1], first.search(queries, K)[1])
    other = load_or_build_index(settings, name="items", meta={"encoder": "e:2"}, build=build)  # another encoder
    assert builds == [1, 1] and other.collection != first.collection
    # generations: a third build drops the oldest items collection and keeps the newest, and keyphrases alone
    keyphrases = make_index(settings, name="keyphrases")
    third = make_index(settings, name="items")
    assert sorted(client_for(settings.milvus_target).list_collections()) == sorted(
        [other.collection, third.collection, keyphrases.collection])
    assert isinstance(make_index(Settings(state_dir=tmp_path)), MatryoshkaFunnelIndex)  # faiss stays the default


def test_the_replica_follower_writes_through_the_seam_and_restores(tmp_path: Path) -> None:
    settings = milvus_settings(tmp_path, embedding_dim=DIM)  # 8-d stand-in encoder: no funnel below 64 dims
    index = make_index(settings)
    assert isinstance(index, MilvusIndex) and index.shortlist_dim is None
    reference, replica = follower(), follower()
    replica.index, replica.settings, replica.snapshot_dir = index, settings, tmp_path / "replicas" / "r1"
    enc = HashEncoder()
    records, offset = [], 0
    for n in range(40):  # upserts, then a re-embed of half of them, then deletes of a quarter
        title = f"item {n}"
        records.append(VectorRecord(f"i{n}", 1, 0, enc.encode([title])[0], ItemDocument(item_id=f"i{n}", version=1,
                                                                                          title=title)))
    records += [VectorRecord(f"i{n}", 2, 0, enc.encode([f"new {n}"])[0],
                             ItemDocument(item_id=f"i{n}", version=2, title=f"new {n}")) for n in range(0, 40, 2)]
    records += [VectorRecord(f"i{n}", 3, 0) for n in range(0, 40, 4)]
    for start in range(0, len(records), 16):  # polled in batches, as from Kafka
        part = [raw(offset + j, rec) for j, rec in enumerate(records[start : start + 16])]
        offset += len(part)
        reference.apply(part)
        replica.apply(part)
    queries = enc.encode([f"new {n}" for n in range(40)] + [f"item {n}" for n in range(40)])
    assert len(index) == len(reference.index) == 30
    assert np.array_equal(index.search(queries, 5)[1], reference.index.search(queries, 5)[1])
    replica.snapshot()
    restored = follower()
    restored.settings, restored.snapshot_dir = settings, replica.snapshot_dir
    back = restored.restore(settings=settings)
    assert isinstance(back, MilvusIndex) and back.collection == index.collection and len(back) == 30
    assert restored.state.offsets == {0: offset}
    assert restored.state.versions.searchable_version("i1") == 1 and restored.state.versions.version(
        stable_id("i0")) == 3
