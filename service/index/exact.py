"""Brute-force numpy index: the reference the FAISS implementations are checked against.

Same protocol as ``FaissIndex`` (upsert / delete / search / snapshot / restore), written as
plainly as possible so that a congruence test failing points at FAISS usage, not at this.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import numpy as np

from service.index.faiss_index import as_batch
from service.index.snapshots import SnapshotInfo, read_sidecar, write_atomic, write_sidecar


class ExactIndex:
    """Exact inner-product search over a dense matrix; rows keyed by int64 ids."""

    kind = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._lock = threading.RLock()
        self._ids = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, dim), dtype=np.float32)

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = as_batch(ids, vectors, self.dim)
        with self._lock:
            keep = ~np.isin(self._ids, ids)
            self._ids = np.concatenate([self._ids[keep], ids])
            self._vectors = np.concatenate([self._vectors[keep], vectors])

    def delete(self, ids: np.ndarray) -> int:
        with self._lock:
            gone = np.isin(self._ids, np.asarray(ids, dtype=np.int64))
            self._ids, self._vectors = self._ids[~gone], self._vectors[~gone]
            return int(gone.sum())

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            scores = queries @ self._vectors.T  # [q, n]
            ids = self._ids
        out_scores = np.zeros((len(queries), k), dtype=np.float32)
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        top = min(k, len(ids))
        for row in range(len(queries)):
            order = np.lexsort((ids, -scores[row]))[:top]  # score descending, ties by id
            out_scores[row, :top] = scores[row, order]
            out_ids[row, :top] = ids[order]
        return out_scores, out_ids

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        with self._lock:
            row_of = {int(i): r for r, i in enumerate(self._ids.tolist())}
            rows = np.array([row_of.get(int(i), -1) for i in ids], dtype=np.int64)
            found = rows >= 0
            out = np.zeros((len(ids), self.dim), dtype=np.float32)
            out[found] = self._vectors[rows[found]]
        return found, out

    def __len__(self) -> int:
        return len(self._ids)

    def snapshot(self, path: Path, *, meta: dict[str, Any] | None = None) -> None:
        with self._lock:
            buffer = io.BytesIO()
            np.savez(buffer, ids=self._ids, vectors=self._vectors)
            info = SnapshotInfo(kind=self.kind, dim=self.dim, count=len(self._ids), meta=dict(meta or {}))
        write_atomic(Path(path), buffer.getvalue())
        write_sidecar(Path(path), info)

    @classmethod
    def restore(cls, path: Path) -> ExactIndex:
        info = read_sidecar(Path(path))
        if info is None:
            raise FileNotFoundError(f"no snapshot with sidecar at {path}")
        index = cls(info.dim)
        with np.load(path) as arrays:
            index._ids, index._vectors = arrays["ids"], arrays["vectors"]
        return index
