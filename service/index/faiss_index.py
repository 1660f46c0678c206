"""FAISS behind the index seam: flat (exact), IVF with a hashtable direct map, or HNSW.

- ``flat``: exact; the vectors live packed in a ``SlotVectorStore`` (fp32) and ``faiss.knn`` scans
  them with ``IndexFlatIP``'s kernel. The default. Not ``IndexIDMap2(IndexFlatIP)``: its ``remove_ids``
  rewrites the whole array, and every re-upsert is a remove (0.46 s per batch of 100 at 1 M 64-d vectors;
  ``bench/vector_storage.py``); the slot store replaces and deletes in O(batch).
- ``ivf``:  ``IndexIVFFlat`` + ``DirectMap.Hashtable``; trained once on the first batch it sees,
  then upsert/delete touch only the affected inverted lists (cheapest upsert at scale).
- ``hnsw``: ``IndexIDMap2(IndexHNSWFlat)``; HNSW cannot remove, so a delete or a re-upsert
  tombstones the old internal label and searches skip tombstones with an ``IDSelectorNot``;
  ``compact()`` rebuilds without them.

One ``RLock`` guards every call: a Kafka follower thread upserts while request threads search.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from service.index.snapshots import SnapshotInfo, read_sidecar, write_atomic, write_sidecar
from service.index.vector_store import SlotVectorStore

IndexKind = Literal["flat", "ivf", "hnsw"]


def as_batch(ids: np.ndarray, vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated contiguous (int64 ids, float32 [n, dim]); a repeated id keeps its last vector."""
    ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    vectors = np.asarray(vectors, dtype=np.float32)
    if not len(ids):
        return ids, np.zeros((0, dim), dtype=np.float32)
    if vectors.shape != (len(ids), dim):
        raise ValueError(f"expected vectors of shape ({len(ids)}, {dim}), got {vectors.shape}")
    _, first_from_end = np.unique(ids[::-1], return_index=True)
    keep = np.sort(len(ids) - 1 - first_from_end)
    return ids[keep], np.ascontiguousarray(vectors[keep])


class FaissIndex:
    """A mutable FAISS index keyed by stable int64 ids (inner product on unit vectors)."""

    def __init__(self, dim: int, *, kind: IndexKind = "flat", nlist: int = 256, nprobe: int = 32,
                 ef_search: int = 64, hnsw_m: int = 32, search_threads: int = 0) -> None:
        if kind not in ("flat", "ivf", "hnsw"):
            raise ValueError(f"unknown index kind {kind!r}")
        self.dim, self.kind = dim, kind
        self.nlist, self.nprobe, self.ef_search, self.hnsw_m = nlist, nprobe, ef_search, hnsw_m
        self.search_threads = search_threads  # OpenMP threads per search; 0 leaves FAISS's default (every core)
        self._lock = threading.RLock()
        self._index: Any = None  # IVF stays None until its first batch trains it
        if kind == "flat":
            self._index = SlotVectorStore(dim, precision="fp32")
        elif kind == "hnsw":
            self._index = faiss.IndexIDMap2(faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT))
        self._live: dict[int, int] = {}  # hnsw: external id -> current internal label
        self._dead: set[int] = set()  # hnsw: tombstoned internal labels
        self._label_ids = np.zeros(0, dtype=np.int64)  # hnsw: internal label -> external id
        self._skip: tuple | None = None  # hnsw: cached (ids, IDSelectorBatch, IDSelectorNot) of tombstones

    # --- writes
    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = as_batch(ids, vectors, self.dim)
        if not len(ids):
            return
        with self._lock:
            if self.kind == "hnsw":
                self._tombstone(ids)
                self._index.add_with_ids(vectors, ids)
                start = len(self._label_ids)
                self._label_ids = np.concatenate([self._label_ids, ids])
                self._live.update(zip(ids.tolist(), range(start, start + len(ids))))
                return
            if self.kind == "flat":
                self._index.upsert(ids, vectors)
                return
            if self._index is None:
                self._index = self._train_ivf(vectors)
            self._index.remove_ids(ids)
            self._index.add_with_ids(vectors, ids)

    def delete(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(np.unique(np.asarray(ids, dtype=np.int64)))
        with self._lock:
            if self.kind == "hnsw":
                return self._tombstone(ids)
            if self.kind == "flat":
                return self._index.delete(ids)
            return 0 if self._index is None or not len(ids) else int(self._index.remove_ids(ids))

    def _tombstone(self, ids: np.ndarray) -> int:
        labels = [self._live.pop(i) for i in ids.tolist() if i in self._live]
        if labels:
            self._dead.update(labels)
            self._skip = None
        return len(labels)

    def _train_ivf(self, vectors: np.ndarray):
        nlist = max(1, min(self.nlist, len(vectors) // 39))  # FAISS wants ≥ 39 points per centroid
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        index.nprobe = min(self.nprobe, nlist)
        return index

    def compact(self) -> None:
        """HNSW: rebuild from the live vectors only (drops tombstones); other kinds need nothing."""
        with self._lock:
            if self.kind != "hnsw" or not self._dead:
                return
            labels = np.fromiter(self._live.values(), dtype=np.int64, count=len(self._live))
            vectors = faiss.downcast_index(self._index.index).reconstruct_batch(labels)
            ids = self._label_ids[labels]
            fresh = FaissIndex(self.dim, kind="hnsw", ef_search=self.ef_search, hnsw_m=self.hnsw_m)
            fresh.upsert(ids, vectors)
            self._index, self._label_ids, self._live = fresh._index, fresh._label_ids, fresh._live
            self._dead, self._skip = set(), None

    # --- reads
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if self.search_threads:
            # OpenMP keeps its thread count per calling thread, so it is set in the thread that searches
            # (a request thread), not once at start-up.
            faiss.omp_set_num_threads(self.search_threads)
        with self._lock:
            if not len(self):
                return np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1, np.int64)
            if self.kind != "hnsw":
                return self._index.search(queries, k)  # flat: SlotVectorStore.search; ivf: FAISS
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
            if self._dead:
                params.sel = self._tombstone_filter()
            scores, labels = faiss.downcast_index(self._index.index).search(queries, k, params=params)
            ids = np.where(labels >= 0, self._label_ids[np.maximum(labels, 0)], -1)
            return scores, ids

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stored vectors by id: flat from its slot store, IVF by ``reconstruct`` through its hashtable
        direct map, HNSW by ``reconstruct_batch`` of the live internal labels."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        found = np.zeros(len(ids), dtype=bool)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        with self._lock:
            if self._index is None or not len(ids):
                return found, out
            if self.kind == "flat":
                return self._index.get(ids)
            if self.kind == "hnsw":
                labels = np.array([self._live.get(int(i), -1) for i in ids], dtype=np.int64)
                found = labels >= 0
                if found.any():
                    out[found] = faiss.downcast_index(self._index.index).reconstruct_batch(labels[found])
                return found, out
            for row, item in enumerate(ids.tolist()):  # IVF: the hashtable raises for an absent id
                try:
                    out[row] = self._index.reconstruct(item)
                    found[row] = True
                except RuntimeError:
                    pass
            return found, out

    def _tombstone_filter(self):
        if self._skip is None:
            dead = np.fromiter(self._dead, dtype=np.int64, count=len(self._dead))
            batch = faiss.IDSelectorBatch(dead)
            self._skip = (dead, batch, faiss.IDSelectorNot(batch))  # keep every piece alive
        return self._skip[2]

    def __len__(self) -> int:
        with self._lock:
            if self.kind == "hnsw":
                return len(self._live)
            if self.kind == "flat":
                return len(self._index)
            return 0 if self._index is None else int(self._index.ntotal)

    # --- persistence
    def snapshot(self, path: Path, *, meta: dict[str, Any] | None = None) -> None:
        """Index bytes then sidecar, each atomically; ``meta`` says what the snapshot covers."""
        with self._lock:
            if self.kind == "flat":
                data = self._index.to_bytes()
            else:
                data = b"" if self._index is None else faiss.serialize_index(self._index).tobytes()
            extra = {"dead_labels": sorted(self._dead)} if self.kind == "hnsw" else {}
            info = SnapshotInfo(kind=self.kind, dim=self.dim, count=len(self), meta=dict(meta or {}), extra=extra)
        write_atomic(Path(path), data)
        write_sidecar(Path(path), info)

    @classmethod
    def restore(cls, path: Path, *, nlist: int = 256, nprobe: int = 32, ef_search: int = 64,
                search_threads: int = 0) -> FaissIndex:
        info = read_sidecar(Path(path))
        if info is None:
            raise FileNotFoundError(f"no snapshot with sidecar at {path}")
        index = cls(info.dim, kind=info.kind, nlist=nlist, nprobe=nprobe, ef_search=ef_search,
                    search_threads=search_threads)
        if info.kind == "flat":  # a ValueError for bytes of another layout (FAISS's IDMap2 before): rebuild
            index._index = SlotVectorStore.from_bytes(Path(path).read_bytes(), info.dim)
        elif len(data := np.fromfile(path, dtype=np.uint8)):
            index._index = faiss.deserialize_index(data)
        if info.kind == "ivf" and index._index is not None:
            index._index.nprobe = min(nprobe, index._index.nlist)
        if info.kind == "hnsw":
            index._label_ids = faiss.vector_to_array(index._index.id_map).astype(np.int64)
            index._dead = set(info.extra.get("dead_labels", []))
            index._live = {int(i): label for label, i in enumerate(index._label_ids) if label not in index._dead}
        if len(index) != info.count:
            raise ValueError(f"snapshot {path} holds {len(index)} vectors but its sidecar says {info.count}")
        return index
