"""Snapshot → restore round trips for every index kind, sidecar meta, and refusing torn snapshots."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from service.index.exact import ExactIndex
from service.index.faiss_index import FaissIndex
from service.index.snapshots import (
    SnapshotInfo,
    matches,
    read_sidecar,
    sidecar_path,
    write_atomic,
    write_sidecar,
)

DIM = 16


def filled(kind: str) -> FaissIndex:
    rng = np.random.default_rng(11)
    v = rng.standard_normal((500, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    index = FaissIndex(DIM, kind=kind, nlist=8, nprobe=8)
    index.upsert(np.arange(500), v)
    index.delete(np.arange(0, 500, 7))
    index.upsert(np.arange(0, 50, 7), -v[0:50:7])  # 8 deleted ids come back
    return index


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_round_trip_keeps_results_size_and_meta(tmp_path, kind: str) -> None:
    index = filled(kind)
    path = tmp_path / f"items.{kind}"
    meta = {"encoder": "encoder:1", "offsets": {"0": 41}}
    index.snapshot(path, meta=meta)
    restored = FaissIndex.restore(path, nprobe=8)
    queries = np.random.default_rng(5).standard_normal((20, DIM)).astype(np.float32)
    assert len(restored) == len(index) == 500 - 72 + 8
    np.testing.assert_array_equal(restored.search(queries, 5)[1], index.search(queries, 5)[1])
    info = read_sidecar(path)
    assert info.meta == meta and info.kind == kind and info.count == len(index)
    restored.upsert(np.array([0]), np.ones((1, DIM), np.float32) / 4)  # still writable after restore
    assert restored.search(np.ones((1, DIM), np.float32), 1)[1][0][0] == 0


def test_empty_ivf_round_trips(tmp_path) -> None:
    FaissIndex(DIM, kind="ivf").snapshot(tmp_path / "empty", meta={})
    assert len(FaissIndex.restore(tmp_path / "empty")) == 0


def test_exact_round_trip(tmp_path) -> None:
    index = ExactIndex(DIM)
    index.upsert(np.arange(10), np.eye(10, DIM, dtype=np.float32))
    index.snapshot(tmp_path / "exact", meta={"a": 1})
    restored = ExactIndex.restore(tmp_path / "exact")
    assert restored.search(np.eye(1, DIM, 3, dtype=np.float32), 1)[1][0][0] == 3 and len(restored) == 10


def test_sidecar_disagreeing_with_index_is_refused(tmp_path) -> None:
    path = tmp_path / "items"
    filled("flat").snapshot(path)
    side = sidecar_path(path)
    side.write_text(json.dumps(json.loads(side.read_text()) | {"count": 3}))
    with pytest.raises(ValueError, match="sidecar says 3"):
        FaissIndex.restore(path)


def test_missing_snapshot_and_meta_matching(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        FaissIndex.restore(tmp_path / "nothing")
    assert read_sidecar(tmp_path / "nothing") is None
    filled("flat").snapshot(tmp_path / "s", meta={"encoder": "encoder:1", "source": "x"})
    info = read_sidecar(tmp_path / "s")
    assert matches(info, kind="flat", dim=DIM, meta={"encoder": "encoder:1"})
    assert not matches(info, kind="flat", dim=DIM, meta={"encoder": "encoder:2"})
    assert not matches(info, kind="hnsw", dim=DIM, meta={})
    assert not matches(info, kind="flat", dim=DIM + 1, meta={})


def test_flat_snapshot_of_the_older_faiss_layout_is_refused_not_misread(tmp_path) -> None:
    """Flat snapshots were ``IndexIDMap2(IndexFlatIP)`` bytes before the slot store; start-up turns this
    ValueError into a rebuild (``service/runtime.py: load_or_build_index``)."""
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    old.add_with_ids(np.eye(3, DIM, dtype=np.float32), np.arange(3))
    write_atomic(tmp_path / "items", faiss.serialize_index(old).tobytes())
    write_sidecar(tmp_path / "items", SnapshotInfo(kind="flat", dim=DIM, count=3))
    with pytest.raises(ValueError, match="not a slot-vector snapshot"):
        FaissIndex.restore(tmp_path / "items")
