"""Vectors keyed by id in one dense array: the flat index's storage and the funnel's full vectors.

Two parts of the index layer need an id-keyed array whose writes cost O(batch) however large the
catalogue is: the funnel's full vectors (``service/index/funnel.py``: replace or drop a batch of ids,
look up a shortlist) and the flat index (``kind="flat"`` in ``faiss_index.py``: the same writes, plus
an exact top-k scan). FAISS's ``IndexIDMap2`` offers both, but its ``remove_ids`` rewrites the arrays
behind the removed rows, and every re-upsert of a re-embedded item is a remove: a batch of 100
re-upserts took 17 ms at 100 k items, 0.46 s at 1 M and 1.9 s at 4 M in a 64-d flat index, and about
as much again in the 384-d fp16 full vectors; here, under 1 ms at every size (``bench/vector_storage.py``,
docs/indexing.md). This store is written by hand because no field library offers an id-keyed array
with O(batch) replace and delete: rows are packed at the front of a growing array, an id maps to its
row in a dict, and a delete moves live rows from the end into the holes (swap-remove), so the live rows
stay contiguous and a scan never meets a dead one. The scan itself is FAISS's (``faiss.knn``, the
kernel ``IndexFlatIP`` uses).

Precision: ``fp32`` (the flat index: exact scores, what ``faiss.knn`` reads), ``fp16`` (768 B per
384-d vector) or ``int8`` with one float32 scale per vector (symmetric per-vector quantisation, 388 B;
needs no training, unlike FAISS's 8-bit quantisers). The dict costs ~100 B per id on top.
docs/indexing.md has the recall of each on the real catalogue.
"""

from __future__ import annotations

import io
import zipfile
from itertools import repeat
from typing import Literal

import faiss
import numpy as np

Precision = Literal["fp32", "fp16", "int8"]
_CODE_TYPES = {"fp32": np.float32, "fp16": np.float16, "int8": np.int8}


class SlotVectorStore:
    """Vectors of dimension ``dim`` by int64 id; O(batch) upsert/delete, O(k) lookup, exact scan. Not
    thread-safe: its owner (``FaissIndex``, the funnel) holds a lock around every call."""

    def __init__(self, dim: int, *, precision: Precision = "fp16", capacity: int = 1024) -> None:
        if precision not in _CODE_TYPES:
            raise ValueError(f"unknown precision {precision!r}; expected one of {sorted(_CODE_TYPES)}")
        self.dim, self.precision = dim, precision
        # Rows at or past ``_used`` are never read, so they stay uninitialised: a large np.empty is mapped
        # lazily, and only the pages written so far take memory.
        self._codes = np.empty((capacity, dim), dtype=_CODE_TYPES[precision])
        self._scales = np.empty(capacity, dtype=np.float32)  # int8 only: the vector is codes × scale
        self._row_ids = np.empty(capacity, dtype=np.int64)  # row -> id: what a scan returns, what a swap moves
        self._row_of: dict[int, int] = {}
        self._used = 0  # rows [0, _used) are live

    # --- writes
    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Store ``vectors`` (float32 [n, dim]) under distinct ``ids``, replacing what they held."""
        rows = np.fromiter((self._row_for(i) for i in ids.tolist()), dtype=np.int64, count=len(ids))
        codes, scales = self._encode(vectors)
        self._codes[rows], self._scales[rows], self._row_ids[rows] = codes, scales, ids

    def delete(self, ids: np.ndarray) -> int:
        """Drop the ids that are present; returns how many were. The live rows past the new end move into
        the holes below it, so rows [0, len) stay exactly the live ones."""
        gone = np.fromiter((row for row in map(self._row_of.pop, np.asarray(ids).tolist(), repeat(None))
                            if row is not None), dtype=np.int64)
        if not len(gone):
            return 0
        end = self._used - len(gone)
        holes = np.sort(gone[gone < end])
        tail_alive = np.ones(self._used - end, dtype=bool)
        tail_alive[gone[gone >= end] - end] = False
        movers = end + np.flatnonzero(tail_alive)  # the live rows past the new end: as many as there are holes
        for array in (self._codes, self._scales, self._row_ids):
            array[holes] = array[movers]
        self._row_of.update(zip(self._row_ids[holes].tolist(), holes.tolist()))
        self._used = end
        return len(gone)

    def _row_for(self, item: int) -> int:
        row = self._row_of.get(item)
        if row is None:
            if self._used == len(self._scales):
                self._grow()
            row, self._used = self._used, self._used + 1
            self._row_of[item] = row
        return row

    def _grow(self) -> None:
        capacity = max(1024, 2 * len(self._scales))
        for name in ("_codes", "_scales", "_row_ids"):
            old = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self._used] = old[: self._used]
            setattr(self, name, new)

    def _encode(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.precision == "int8":
            peak = np.abs(vectors).max(axis=1)
            scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
            return np.rint(vectors / scales[:, None]).astype(np.int8), scales
        return vectors.astype(self._codes.dtype), np.ones(len(vectors), np.float32)

    # --- reads
    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """float32 [len(ids), dim]; every id must be present (``KeyError`` otherwise)."""
        rows = np.fromiter((self._row_of[i] for i in np.asarray(ids).tolist()), dtype=np.int64, count=len(ids))
        return self._codes[rows].astype(np.float32) * self._scales[rows, None]

    def get(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found bool [n], float32 [n, dim]): the stored vectors (dequantised) of the ids present, zeros
        where an id is absent. The phased ranker's first phase reads item vectors with it."""
        id_list = np.asarray(ids, dtype=np.int64).reshape(-1).tolist()
        rows = np.fromiter((self._row_of.get(i, -1) for i in id_list), dtype=np.int64, count=len(id_list))
        found = rows >= 0
        out = np.zeros((len(id_list), self.dim), dtype=np.float32)
        if found.any():
            hit = rows[found]
            out[found] = self._codes[hit].astype(np.float32) * self._scales[hit, None]
        return found, out

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k by inner product: (scores [q, k] float32, ids [q, k] int64), missing slots -1.
        fp32 stores only: the scan reads the rows as they are."""
        if self.precision != "fp32":
            raise TypeError(f"search scans fp32 rows; this store keeps {self.precision}")
        scores = np.zeros((len(queries), k), np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        found = min(k, self._used)
        if found:
            top_scores, rows = faiss.knn(queries, self._codes[: self._used], found, metric=faiss.METRIC_INNER_PRODUCT)
            scores[:, :found], ids[:, :found] = top_scores, self._row_ids[rows]
        return scores, ids

    def __len__(self) -> int:
        return self._used

    def nbytes(self) -> int:
        """Bytes of the live rows (the id map's dict is extra, ~100 B per id)."""
        return self._used * (self._codes.itemsize * self.dim + self._scales.itemsize + self._row_ids.itemsize)

    # --- persistence
    def to_bytes(self) -> bytes:
        """The live rows, as an uncompressed npz."""
        used = self._used
        buffer = io.BytesIO()
        np.savez(buffer, ids=self._row_ids[:used], codes=self._codes[:used], scales=self._scales[:used],
                 precision=np.array(self.precision))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, dim: int) -> SlotVectorStore:
        """Inverse of ``to_bytes``; ``ValueError`` when the bytes are not such a snapshot of width ``dim``."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                ids, codes, scales = arrays["ids"], arrays["codes"], arrays["scales"]
                precision = str(arrays["precision"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # not an npz, or torn
            raise ValueError(f"not a slot-vector snapshot: {exc}") from exc
        if codes.shape != (len(ids), dim) or len(scales) != len(ids):
            raise ValueError(f"slot-vector snapshot holds codes {codes.shape} for {len(ids)} ids, expected width {dim}")
        if precision not in _CODE_TYPES or codes.dtype != _CODE_TYPES[precision]:
            raise ValueError(f"slot-vector snapshot says {precision!r} but holds {codes.dtype} codes")
        store = cls(dim, precision=precision, capacity=max(1024, len(ids)))
        store._codes[: len(ids)], store._scales[: len(ids)], store._row_ids[: len(ids)] = codes, scales, ids
        store._row_of = dict(zip(ids.tolist(), range(len(ids))))
        store._used = len(ids)
        return store
