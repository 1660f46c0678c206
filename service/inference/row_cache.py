"""Bounded in-process LRUs of model outputs per input, for inputs that repeat.

Two model calls repeat on a serving replica: the ranker's on head pairs ("cordless drill" with the same
popular products many times a minute; the cross-encoder is the one expensive step of ``/v1/rank``) and
the encoder's on head queries and on rank candidates whose text the item index does not hold (a
caller's candidates are the same texts request after request). One class serves both:

- **pair scores** (``pair_score_cache``): key (ranker version, task, left text, right text), value the
  ranker's four raw outputs (two cumulative relevance logits, CTR and CVR logits) as it returned them,
  so post-processing (label cuts, engagement priors from the card) stays where it is;
- **embeddings** (``embedding_cache``): key (encoder version, kind, text), value the cut vector.

A model version in every key means a swapped-in model never reads its predecessor's outputs.
``functools.lru_cache`` does not fit: it caches one call, not the rows inside a batch, and offers no
partial hits. An ``OrderedDict`` under one lock is enough: a look-up or insert is O(1) and the lock is
held for microseconds per batch. Hits and misses are counted on ``/metrics`` (inference registry):
``shoprank_pair_cache_{hits,misses}_total`` and ``shoprank_embedding_cache_{hits,misses}_total``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Protocol

import numpy as np
from prometheus_client import Counter

from service.inference.metrics import INFERENCE_REGISTRY

PAIR_CACHE_HITS = Counter("shoprank_pair_cache_hits", "Ranker pair scores served from the in-process LRU",
                          registry=INFERENCE_REGISTRY)
PAIR_CACHE_MISSES = Counter("shoprank_pair_cache_misses", "Ranker pair scores not in the LRU (computed)",
                            registry=INFERENCE_REGISTRY)
EMBEDDING_CACHE_HITS = Counter("shoprank_embedding_cache_hits", "Texts whose embedding came from the in-process LRU",
                               registry=INFERENCE_REGISTRY)
EMBEDDING_CACHE_MISSES = Counter("shoprank_embedding_cache_misses", "Texts not in the embedding LRU (encoded)",
                                 registry=INFERENCE_REGISTRY)


class RowCache:
    """Thread-safe LRU from a hashable key to a small float32 vector; ``size`` 0 stores nothing."""

    def __init__(self, size: int, *, hits: Counter, misses: Counter) -> None:
        self.size = size
        self._hits, self._misses = hits, misses
        self._lock = threading.Lock()
        self._rows: OrderedDict[Hashable, np.ndarray] = OrderedDict()

    def get_many(self, keys: Sequence[Hashable]) -> list[np.ndarray | None]:
        """The cached value per key (None where absent); hits become the most recently used."""
        if self.size <= 0:
            return [None] * len(keys)
        out: list[np.ndarray | None] = []
        with self._lock:
            for key in keys:
                value = self._rows.get(key)
                if value is not None:
                    self._rows.move_to_end(key)
                out.append(value)
        hits = sum(v is not None for v in out)
        self._hits.inc(hits)
        self._misses.inc(len(keys) - hits)
        return out

    def put_many(self, keys: Sequence[Hashable], values: np.ndarray) -> None:
        """Store one row of ``values`` per key, evicting the least recently used beyond ``size``."""
        if self.size <= 0:
            return
        with self._lock:
            for key, value in zip(keys, values):
                self._rows[key] = np.array(value, dtype=np.float32)  # a copy: callers may reuse their arrays
                self._rows.move_to_end(key)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)

    def rows(self, keys: Sequence[Hashable], compute: Callable[[list[int]], np.ndarray]) -> np.ndarray:
        """One row per key: cached rows as they are, the rest from ``compute(missing row numbers)`` (called
        once, only when something is missing), which are then stored. What a batch model call with a
        cache in front of it needs: the hits and the misses of one batch, merged in input order."""
        return rows_through(self, keys, compute)

    def __len__(self) -> int:
        return len(self._rows)


class Tier(Protocol):
    """A cache with batch reads (None where absent) and writes: this LRU, or one shared between processes."""

    def get_many(self, keys: Sequence[Hashable]) -> list[np.ndarray | None]: ...

    def put_many(self, keys: Sequence[Hashable], values: np.ndarray) -> None: ...


def rows_through(tier: Tier, keys: Sequence[Hashable], compute: Callable[[list[int]], np.ndarray]) -> np.ndarray:
    """One row per key from ``tier``, its gaps filled by one ``compute(gap row numbers)`` call and stored back in
    ``tier``, in input order."""
    cached = tier.get_many(keys)
    todo = [row for row, value in enumerate(cached) if value is None]
    if not todo:
        return np.stack(cached)
    fresh = np.asarray(compute(todo), dtype=np.float32)
    tier.put_many([keys[r] for r in todo], fresh)
    out = np.empty((len(cached), fresh.shape[1]), dtype=np.float32)
    out[todo] = fresh
    for row, value in enumerate(cached):
        if value is not None:
            out[row] = value
    return out


def pair_score_cache(size: int) -> RowCache:
    """The ranker's outputs per (ranker version, task, left, right)."""
    return RowCache(size, hits=PAIR_CACHE_HITS, misses=PAIR_CACHE_MISSES)


def embedding_cache(size: int) -> RowCache:
    """The encoder's vectors per (encoder version, kind, text)."""
    return RowCache(size, hits=EMBEDDING_CACHE_HITS, misses=EMBEDDING_CACHE_MISSES)
