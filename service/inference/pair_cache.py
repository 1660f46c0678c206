"""A bounded in-process LRU of the ranker's outputs per pair, for repeated head queries.

Head queries repeat ("cordless drill" with the same popular products many times a minute), and the
cross-encoder is the one expensive step of ``/v1/rank``. The key is (ranker version, task, left text,
right text): a swapped-in ranker version never reads its predecessor's scores. The value is the
ranker's four raw outputs (two cumulative relevance logits, CTR and CVR logits) as it returned them,
so post-processing (label cuts, engagement priors from the card) stays where it is.

``functools.lru_cache`` does not fit: it caches one call, not the pairs inside a batch, and offers
no partial hits. An ``OrderedDict`` under one lock is enough: a look-up or insert is O(1) and the
lock is held for microseconds per batch. Hits and misses are counted on ``/metrics``
(``shoprank_pair_cache_{hits,misses}_total`` in the inference registry).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence

import numpy as np
from prometheus_client import Counter

from service.inference.metrics import INFERENCE_REGISTRY

PAIR_CACHE_HITS = Counter("shoprank_pair_cache_hits", "Ranker pair scores served from the in-process LRU",
                          registry=INFERENCE_REGISTRY)
PAIR_CACHE_MISSES = Counter("shoprank_pair_cache_misses", "Ranker pair scores not in the LRU (computed)",
                            registry=INFERENCE_REGISTRY)


class PairScoreCache:
    """Thread-safe LRU from a hashable pair key to a small float32 vector; ``size`` 0 stores nothing."""

    def __init__(self, size: int) -> None:
        self.size = size
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
        PAIR_CACHE_HITS.inc(hits)
        PAIR_CACHE_MISSES.inc(len(keys) - hits)
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

    def __len__(self) -> int:
        return len(self._rows)
