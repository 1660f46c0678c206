"""Milvus behind the index seam: the same ``VectorIndex`` calls, the vectors kept by a Milvus collection.

``SHOPRANK_INDEX_BACKEND=milvus`` puts the item and keyphrase indexes in Milvus instead of process memory.
``SHOPRANK_MILVUS_URI`` says which Milvus: a local path ending in ``.db`` is Milvus Lite, embedded in this
process (pip ``milvus-lite``: an in-process gRPC server over local files; what the tests and the bench run),
an ``http(s)://`` URL is a Milvus standalone or distributed cluster; pymilvus's ``MilvusClient`` speaks to both.

Layout (one collection per index, ``<milvus_collection>_<role>_<generation>``):

- ``id`` INT64 primary key: the seam's stable int64 ids (``service.catalogue.stable_id``), used as is;
  Milvus's ``upsert`` replaces by primary key, ``delete`` drops by it.
- ``full`` FLOAT_VECTOR at ``dim``: the vector as given.
- with the Matryoshka funnel on (``funnel_dim``), ``short`` FLOAT_VECTOR at the cut: ``matryoshka_cut`` of it.
  A search asks Milvus for ``shortlist_factor × k`` candidates on ``short`` with their ``full`` vectors as
  output fields (one round trip), then rescores them here at full width: the funnel of
  ``service/index/funnel.py``. Milvus has no built-in "ANN on one vector field, exact rescore on another"
  (its ``refine`` re-ranks a quantised copy of the *same* field; ``hybrid_search`` fuses two ANN lists by
  rank, not by the full-width score), so the rescore is the client's, as in the FAISS funnel.
- Index on the searched field from ``index_kind``: flat → ``FLAT``, ivf → ``IVF_FLAT`` (nlist, nprobe),
  hnsw → ``HNSW`` (M, ef); metric ``IP`` on unit vectors, as FAISS.

What differs from the FAISS funnel: the full vectors are float32 (Milvus Lite stores FLOAT_VECTOR only; the
FAISS funnel keeps int8 or fp16), so rescored scores are exact where FAISS's carry the int8 rounding
(≤ 2.6e-3); ties are broken by id after the rescore, like the funnel; ``vectors`` returns the float32 vectors.

Snapshots: Milvus persists every write itself, so ``snapshot(path)`` flushes the collection (its segments
sealed and durable) and writes the same sidecar as the FAISS indexes, naming the collection, its size and the
caller's meta (encoder, Kafka offsets); the sidecar is the commit point. ``restore`` reopens that collection:
it holds the snapshot's writes *and any made after it* (nothing rolls Milvus back), which a replica follower
makes good by replaying the log from the snapshot's offsets (upserts and deletes by id are idempotent).
``make_index`` always makes a new generation, so a model swap builds its new collections while the old ones
serve; each new generation drops the older generations of its role but the newest (at most one stale
collection per role is kept).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pymilvus import DataType, MilvusClient

from service.index.faiss_index import IndexKind, as_batch
from service.index.snapshots import SnapshotInfo, read_sidecar, write_atomic, write_sidecar
from service.matryoshka import matryoshka_cut

Consistency = Literal["Strong", "Bounded", "Session", "Eventually"]
_INDEX_TYPES = {"flat": "FLAT", "ivf": "IVF_FLAT", "hnsw": "HNSW"}
_WRITE_BATCH = 4096  # rows per upsert request: ~6.5 MB of 384-d float32 + 64-d cut, under gRPC's 64 MB
_MAX_TOPK = 16384  # Milvus's largest search limit

_clients: dict[str, MilvusClient] = {}
_clients_lock = threading.Lock()


def is_lite(uri: str) -> bool:
    """A local file (Milvus Lite) rather than a server URL."""
    return "://" not in uri


def client_for(uri: str, token: str | None = None) -> MilvusClient:
    """One ``MilvusClient`` per URI in this process (Milvus Lite serves one data directory per process);
    ``token`` ("user:password" or an API key) authenticates to a server."""
    if is_lite(uri):
        if not uri.endswith(".db"):
            raise ValueError(f"a Milvus Lite URI is a local path ending in .db, got {uri!r}")
        uri = str(Path(uri).resolve())
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    with _clients_lock:
        if uri not in _clients:
            _clients[uri] = MilvusClient(uri=uri, token=token or "")
        return _clients[uri]


class MilvusIndex:
    """A ``VectorIndex`` of dimension ``dim`` kept in the Milvus collection ``collection`` at ``uri``."""

    kind = "milvus"

    def __init__(self, dim: int, *, uri: str, collection: str, shortlist_dim: int | None = None,
                 shortlist_factor: int = 8, index_kind: IndexKind = "flat", nlist: int = 256, nprobe: int = 32,
                 ef_search: int = 64, hnsw_m: int = 32, consistency: Consistency = "Strong",
                 flush_rows: int = 1000, token: str | None = None, create: bool = True) -> None:
        if shortlist_dim is not None and not 0 < shortlist_dim < dim:
            raise ValueError(f"shortlist_dim must be between 1 and {dim - 1}, got {shortlist_dim}")
        if index_kind not in _INDEX_TYPES:
            raise ValueError(f"unknown index kind {index_kind!r}")
        self.dim, self.shortlist_dim, self.shortlist_factor = dim, shortlist_dim, shortlist_factor
        self.index_kind, self.nlist, self.nprobe, self.ef_search = index_kind, nlist, nprobe, ef_search
        self.hnsw_m, self.consistency = hnsw_m, consistency
        self.uri, self.collection = uri, collection
        self.client = client_for(uri, token)
        # Milvus Lite scans unflushed rows in Python (≈ 60 ms more per search per 1,000 of them, measured):
        # flush once this many were written; a server seals and indexes growing segments itself
        self.flush_rows = flush_rows if is_lite(uri) else None
        self._unflushed = 0
        self._lock = threading.Lock()
        self._field = "full" if shortlist_dim is None else "short"  # the field the ANN index searches
        if create:
            self._create()
        elif not self.client.has_collection(collection):
            raise ValueError(f"Milvus collection {collection!r} does not exist at {uri}")
        self.client.load_collection(collection)

    @classmethod
    def new_generation(cls, dim: int, *, uri: str, prefix: str, **params: Any) -> MilvusIndex:
        """An empty index in a new collection ``<prefix>_<generation>``; drops older generations of ``prefix``
        but the newest (which may be serving while this one is built, as during a model swap)."""
        client = client_for(uri, params.get("token"))
        older = sorted(name for name in client.list_collections() if name.rsplit("_", 1)[0] == prefix)
        for name in older[:-1]:
            client.drop_collection(name)
        return cls(dim, uri=uri, collection=f"{prefix}_{time.time_ns():020d}", **params)

    def _create(self) -> None:
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("full", DataType.FLOAT_VECTOR, dim=self.dim)
        if self.shortlist_dim is not None:
            schema.add_field("short", DataType.FLOAT_VECTOR, dim=self.shortlist_dim)
        params = self.client.prepare_index_params()
        params.add_index(self._field, index_type=_INDEX_TYPES[self.index_kind], metric_type="IP",
                         params=self._build_params())
        if self.shortlist_dim is not None:  # Milvus loads a collection only when every vector field has an index
            params.add_index("full", index_type="FLAT", metric_type="IP")
        self.client.create_collection(self.collection, schema=schema, consistency_level=self.consistency)
        # sync=False: waiting asks the server for a timestamp, which Milvus Lite does not implement (it logs
        # the error and pymilvus sleeps 0.5 s per index); load_collection waits for the indexes anyway
        self.client.create_index(self.collection, params, sync=False)

    def _build_params(self) -> dict[str, Any]:
        if self.index_kind == "ivf":
            return {"nlist": self.nlist}
        if self.index_kind == "hnsw":
            return {"M": self.hnsw_m, "efConstruction": 200}
        return {}

    def _search_params(self, limit: int) -> dict[str, Any]:
        if self.index_kind == "ivf":
            return {"metric_type": "IP", "params": {"nprobe": self.nprobe}}
        if self.index_kind == "hnsw":
            return {"metric_type": "IP", "params": {"ef": max(self.ef_search, limit)}}
        return {"metric_type": "IP", "params": {}}

    # --- writes
    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = as_batch(ids, vectors, self.dim)
        for start in range(0, len(ids), _WRITE_BATCH):
            part, full = ids[start : start + _WRITE_BATCH].tolist(), vectors[start : start + _WRITE_BATCH]
            rows = [{"id": i, "full": v} for i, v in zip(part, full)]
            if self.shortlist_dim is not None:
                for row, short in zip(rows, matryoshka_cut(full, self.shortlist_dim)):
                    row["short"] = short
            self.client.upsert(self.collection, rows)
        self._written(len(ids))

    def _written(self, rows: int) -> None:
        with self._lock:
            self._unflushed += rows
            if self.flush_rows is None or self._unflushed < self.flush_rows:
                return
            self._unflushed = 0
        self.client.flush(self.collection)

    def delete(self, ids: np.ndarray) -> int:
        ids = np.unique(np.asarray(ids, dtype=np.int64)).tolist()
        if not ids:
            return 0
        present = self.client.get(self.collection, ids=ids, output_fields=["id"])  # delete counts asked ids
        if present:
            self.client.delete(self.collection, ids=[row["id"] for row in present])
            self._written(len(present))
        return len(present)

    # --- reads
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        scores = np.zeros((len(queries), k), np.float32)
        found = np.full((len(queries), k), -1, np.int64)
        if not len(queries) or k <= 0:
            return scores, found
        funnel = self.shortlist_dim is not None
        limit = min(_MAX_TOPK, self.shortlist_factor * k if funnel else k)
        data = matryoshka_cut(queries, self.shortlist_dim) if funnel else queries
        hits = self.client.search(self.collection, data=list(data), anns_field=self._field, limit=limit,
                                  search_params=self._search_params(limit),
                                  output_fields=["full"] if funnel else [], consistency_level=self.consistency)
        for row, (query, answer) in enumerate(zip(queries, hits)):
            if not answer:
                continue
            ids = np.fromiter((hit["id"] for hit in answer), dtype=np.int64, count=len(answer))
            if funnel:
                full = np.array([hit["entity"]["full"] for hit in answer], dtype=np.float32)
                row_scores = full @ query
            else:
                row_scores = np.fromiter((hit["distance"] for hit in answer), dtype=np.float32, count=len(answer))
            best = np.lexsort((ids, -row_scores))[:k]  # score descending, ties by id
            scores[row, : len(best)], found[row, : len(best)] = row_scores[best], ids[best]
        return scores, found

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        found = np.zeros(len(ids), dtype=bool)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        if not len(ids):
            return found, out
        rows = self.client.get(self.collection, ids=np.unique(ids).tolist(), output_fields=["full"])
        held = {int(row["id"]): row["full"] for row in rows}
        for r, item in enumerate(ids.tolist()):
            if item in held:
                found[r], out[r] = True, held[item]
        return found, out

    def __len__(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"],
                                 consistency_level=self.consistency)
        return int(rows[0]["count(*)"])

    def compact(self) -> None:
        """Ask Milvus to merge segments and purge deleted rows (it also does so on its own)."""
        self.client.compact(self.collection)

    def drop(self) -> None:
        """Remove the collection (tests, benches, a retired generation)."""
        self.client.drop_collection(self.collection)

    # --- persistence
    def snapshot(self, path: Path, *, meta: dict[str, Any] | None = None) -> None:
        """Flush the collection, then write a pointer file and the sidecar at ``path`` (the commit point)."""
        path = Path(path)
        with self._lock:
            self._unflushed = 0
        self.client.flush(self.collection)
        pointer = {"uri": self.uri, "collection": self.collection}
        info = SnapshotInfo(kind=self.kind, dim=self.dim, count=len(self), meta=dict(meta or {}),
                            extra={**pointer, "shortlist_dim": self.shortlist_dim})
        write_atomic(path, json.dumps(pointer).encode("utf-8"))
        write_sidecar(path, info)

    @classmethod
    def restore(cls, path: Path, *, uri: str, **params: Any) -> MilvusIndex:
        """Reopen the collection a snapshot at ``path`` names (a ValueError when it is not at ``uri``)."""
        info = read_sidecar(Path(path))
        if info is None or info.kind != cls.kind or "collection" not in info.extra:
            raise FileNotFoundError(f"no Milvus snapshot with sidecar at {path}")
        if not _same_uri(info.extra.get("uri", ""), uri):
            raise ValueError(f"snapshot {path} names a collection at {info.extra.get('uri')}, not at {uri}")
        return cls(info.dim, uri=uri, collection=info.extra["collection"],
                   shortlist_dim=info.extra.get("shortlist_dim"), create=False, **params)


def _same_uri(a: str, b: str) -> bool:
    if is_lite(a) and is_lite(b):
        return Path(a).resolve() == Path(b).resolve()
    return a.rstrip("/") == b.rstrip("/")
