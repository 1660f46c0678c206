"""Full-width vectors keyed by id, for rescoring a shortlist: the funnel's second stage.

The funnel (``service/index/funnel.py``) needs two things from its full vectors: replace or drop a
batch of ids, look up a shortlist of ids. FAISS's ``IndexIDMap2`` over an ``IndexScalarQuantizer``
does the lookup, but ``remove_ids`` rewrites the arrays behind the removed rows and every re-upsert
of an item is a remove: a batch of 100 re-upserts took 15 ms at 100 k items, 0.41 s at 1 M and 1.9 s
at 4 M (``bench/full_vector_store.py``). This store is written by hand because no field library
offers an id-keyed array with O(batch) replace and delete: rows live in slots of a growing array,
an id maps to its slot in a dict, and a deleted slot goes on a free list for the next new id (the
same batch: 0.14 / 0.17 / 0.89 ms).

Precision: ``fp16`` (768 B per 384-d vector) or ``int8`` with one float32 scale per vector
(symmetric per-vector quantisation, 388 B; needs no training, unlike FAISS's 8-bit quantisers). The
dict costs ~100 B per id on top. docs/indexing.md has the recall of each on the real catalogue.
"""

from __future__ import annotations

import io
import zipfile
from typing import Literal

import numpy as np

Precision = Literal["fp16", "int8"]
_CODE_TYPES = {"fp16": np.float16, "int8": np.int8}


class SlotVectorStore:
    """Vectors of dimension ``dim`` by int64 id; O(batch) upsert/delete, O(k) lookup. Not thread-safe:
    the funnel holds its lock around every call."""

    def __init__(self, dim: int, *, precision: Precision = "fp16", capacity: int = 1024) -> None:
        if precision not in _CODE_TYPES:
            raise ValueError(f"unknown precision {precision!r}; expected one of {sorted(_CODE_TYPES)}")
        self.dim, self.precision = dim, precision
        # Rows at or past ``_used`` are never read, so they stay uninitialised: a large np.empty is mapped
        # lazily, and only the pages written so far take memory.
        self._codes = np.empty((capacity, dim), dtype=_CODE_TYPES[precision])
        self._scales = np.empty(capacity, dtype=np.float32)  # int8 only: the vector is codes × scale
        self._slot_of: dict[int, int] = {}
        self._free: list[int] = []
        self._used = 0  # slots ever handed out (the high-water mark)

    # --- writes
    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Store ``vectors`` (float32 [n, dim]) under distinct ``ids``, replacing what they held."""
        slots = np.fromiter((self._slot_for(i) for i in ids.tolist()), dtype=np.int64, count=len(ids))
        codes, scales = self._encode(vectors)
        self._codes[slots], self._scales[slots] = codes, scales

    def delete(self, ids: np.ndarray) -> int:
        """Drop the ids that are present; returns how many were."""
        slots = [slot for slot in (self._slot_of.pop(i, None) for i in np.asarray(ids).tolist()) if slot is not None]
        self._free.extend(slots)
        return len(slots)

    def _slot_for(self, item: int) -> int:
        slot = self._slot_of.get(item)
        if slot is None:
            if self._free:
                slot = self._free.pop()
            else:
                if self._used == len(self._scales):
                    self._grow()
                slot, self._used = self._used, self._used + 1
            self._slot_of[item] = slot
        return slot

    def _grow(self) -> None:
        capacity = max(1024, 2 * len(self._scales))
        for name in ("_codes", "_scales"):
            old = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self._used] = old[: self._used]
            setattr(self, name, new)

    def _encode(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.precision == "fp16":
            return vectors.astype(np.float16), np.ones(len(vectors), np.float32)
        peak = np.abs(vectors).max(axis=1)
        scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        return np.rint(vectors / scales[:, None]).astype(np.int8), scales

    # --- reads
    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """float32 [len(ids), dim]; every id must be present (``KeyError`` otherwise)."""
        slots = np.fromiter((self._slot_of[i] for i in np.asarray(ids).tolist()), dtype=np.int64, count=len(ids))
        return self._codes[slots].astype(np.float32) * self._scales[slots, None]

    def __len__(self) -> int:
        return len(self._slot_of)

    def nbytes(self) -> int:
        """Bytes of the slot arrays handed out so far (the id map's dict is extra, ~100 B per id)."""
        return self._used * (self._codes.itemsize * self.dim + self._scales.itemsize)

    # --- persistence
    def to_bytes(self) -> bytes:
        """The live rows only (free slots dropped), as an uncompressed npz."""
        ids = np.fromiter(self._slot_of.keys(), dtype=np.int64, count=len(self._slot_of))
        slots = np.fromiter(self._slot_of.values(), dtype=np.int64, count=len(self._slot_of))
        buffer = io.BytesIO()
        np.savez(buffer, ids=ids, codes=self._codes[slots], scales=self._scales[slots],
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
            raise ValueError(f"not a full-vector snapshot: {exc}") from exc
        if codes.shape != (len(ids), dim) or len(scales) != len(ids):
            raise ValueError(f"full-vector snapshot holds codes {codes.shape} for {len(ids)} ids, expected width {dim}")
        store = cls(dim, precision=precision, capacity=max(1024, len(ids)))
        store._codes[: len(ids)], store._scales[: len(ids)] = codes, scales
        store._slot_of = dict(zip(ids.tolist(), range(len(ids))))
        store._used = len(ids)
        return store
