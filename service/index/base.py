"""The index seam: a mutable vector index keyed by stable int64 ids (inner product on unit vectors).

Implementations: ``faiss_index.FaissIndex`` (flat / IVF-hashtable / HNSW), ``funnel.MatryoshkaFunnelIndex``
(a ``FaissIndex`` over the 64-d cut whose shortlist is rescored at full width; the default layout, chosen
by ``factory.make_index``) and ``exact.ExactIndex`` (numpy brute force, the reference for congruence tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class VectorIndex(Protocol):
    dim: int

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace vectors by id (int64 ids, float32 [n, dim]); never rebuilds the whole index."""
        ...

    def delete(self, ids: np.ndarray) -> int:
        """Remove ids if present; returns how many were removed."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores [q, k] float32, ids [q, k] int64) best first; missing slots have id -1."""
        ...

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found bool [n], float32 [n, dim]): the vectors stored under ``ids`` as the index holds them
        (dequantised where it quantises), zeros where an id is absent. Thread-safe against writers."""
        ...

    def snapshot(self, path: Path) -> None:
        """Write the whole index durably (write to a temp file, then rename)."""
        ...

    def __len__(self) -> int: ...
