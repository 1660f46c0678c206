"""Ranker pair scores shared by every process of a deployment, and the head queries they are warmed for (Redis).

Why: a search whose top candidates include a retitled or new item re-scores that pair with the cross-encoder on
the request path, and under a stream of title changes most searches meet one (pair-cache hits 92 % at 300
updates/s against 100 % without). That call was the readers' tail under updates (docs/indexing.md,
"2026-12-06: pair scores warmed off the request path"). So:

- every rank records its query, the items the cross-encoder re-scored for it and its *entry bar* (the cosine to
  the query a candidate needs to be among the ``rerank_depth`` closest of that request's candidates) in
  ``headq:<task>``, buffered, flushed at most every second;
- ``shoprank indexer recommend`` (``indexer/pair_warmer.py``) scores each changed item against the recorded
  queries that re-scored it last time or whose bar it now clears, off the request path, and writes the raw
  outputs here;
- ``PairScorer`` looks here before calling the model for pairs its in-process LRU misses, and writes what it
  computes back, so one process's work serves every replica.

Keys (under ``settings.redis_prefix``):

- ``pair:<sha1 of version, task, left, right>`` string: the ranker's four raw float32 outputs (16 bytes),
  expiring ``pair_score_ttl_s`` after the write (a model version in the key: a new ranker never reads them);
- ``headq:<task>`` sorted set: query → last seen (unix s), trimmed to the newest ``pair_warm_queries``;
- ``headq-info:<task>`` hash: query → ``{"bar": entry bar, "ids": the re-scored item ids, "next": [[id, text],
  ...] of the first phase's next few}`` (trimmed with the set).

A cache must not fail a request: a Redis error reads as "nothing shared" and is counted, the caller computes. It
must not slow one either: after an error the shared scores are not asked for ``pair_shared_retry_s`` (every look-up
would otherwise wait for a refused or timed-out connection), then the next call tries again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import redis
from prometheus_client import Counter

from service.inference.metrics import INFERENCE_REGISTRY
from service.settings import Settings
from service.store.redis_store import connect

log = logging.getLogger(__name__)

SHARED_HITS = Counter("shoprank_pair_shared_hits", "Ranker pair scores the in-process LRU missed and Redis held",
                      registry=INFERENCE_REGISTRY)
SHARED_MISSES = Counter("shoprank_pair_shared_misses", "Ranker pair scores neither cache held (computed here)",
                        registry=INFERENCE_REGISTRY)
SHARED_ERRORS = Counter("shoprank_pair_shared_errors", "Shared pair-score reads or writes Redis did not answer",
                        registry=INFERENCE_REGISTRY)
SHARED_SKIPPED = Counter("shoprank_pair_shared_skipped", "Shared pair-score look-ups and writes not tried: Redis "
                         "failed less than pair_shared_retry_s ago", registry=INFERENCE_REGISTRY)

OUTPUTS = 4  # two cumulative relevance logits, CTR and CVR logits (PairScorer's raw row)

# ARGV: now, keep, then (query, info JSON) per recorded query. KEYS: the set, the info hash. Drops the oldest past
# `keep` from both.
_RECORD = """
local now, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], now, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
local extra = redis.call('ZCARD', KEYS[1]) - keep
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[1], 0, extra - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
  for i = 1, #old, 1000 do  -- unpack has a stack limit (~8,000)
    redis.call('HDEL', KEYS[2], unpack(old, i, math.min(i + 999, #old)))
  end
end
return 0
"""


@dataclass(frozen=True)
class HeadQuery:
    """A ranked query as the warmer needs it: the items re-scored for it and the cosine a newcomer needs."""

    query: str
    bar: float
    item_ids: tuple[str, ...] = ()
    """The items the cross-encoder re-scored (a new title of one is a new pair)."""
    next_in_line: tuple[tuple[str, str], ...] = ()
    """(item id, text) of the first phase's next few after them: a delete or a retitle above moves them up."""


def pair_key(key: Sequence[Hashable]) -> str:
    """The Redis key part of a pair-score key (ranker version, task, left text, right text)."""
    return hashlib.sha1("\x1f".join(map(str, key)).encode()).hexdigest()


class RedisPairScores:
    """Shared pair scores and the head-query log on one Redis database; thread-safe, shared by a process."""

    def __init__(self, settings: Settings, *, flush_every_s: float = 1.0) -> None:
        self._redis = connect(settings, "RedisPairScores")
        self._prefix = settings.redis_prefix
        self._ttl_s = settings.pair_score_ttl_s
        self._keep = settings.pair_warm_queries
        self._record = self._redis.register_script(_RECORD)
        self._flush_every_s = flush_every_s
        self._pending: dict[str, dict[str, HeadQuery]] = {}  # task → query → its newest record
        self._lock = threading.Lock()
        self._last_flush = 0.0
        self._retry_s = settings.pair_shared_retry_s
        self._down_until = 0.0  # monotonic time before which the shared scores are not asked for

    # --- the shared scores (PairScorer's second tier)
    def get_many(self, keys: Sequence[Sequence[Hashable]]) -> list[np.ndarray | None]:
        """The raw outputs per pair key, None where Redis holds none (or does not answer)."""
        if not keys:
            return []
        if self._skipping(len(keys)):
            return [None] * len(keys)
        try:
            raw = self._redis.mget([f"{self._prefix}pair:{pair_key(k)}" for k in keys])
        except redis.RedisError as exc:
            self._failed("unreadable", exc)
            return [None] * len(keys)
        out = [None if r is None or len(r) != 4 * OUTPUTS else np.frombuffer(r, dtype=np.float32) for r in raw]
        hits = sum(v is not None for v in out)
        SHARED_HITS.inc(hits)
        SHARED_MISSES.inc(len(keys) - hits)
        return out

    def put_many(self, keys: Sequence[Sequence[Hashable]], values: np.ndarray) -> None:
        """Share these raw outputs (one row per key) for ``pair_score_ttl_s``."""
        if not keys or self._skipping(len(keys)):
            return
        pipe = self._redis.pipeline(transaction=False)
        for key, row in zip(keys, np.asarray(values, dtype=np.float32)):
            pipe.set(f"{self._prefix}pair:{pair_key(key)}", row.tobytes(), ex=self._ttl_s or None)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            self._failed("not written", exc)

    def _skipping(self, pairs: int) -> bool:
        """Whether Redis failed too recently to be asked again (a small circuit breaker, by hand: redis-py retries
        a call but does not remember that the last one failed)."""
        if time.monotonic() >= self._down_until:
            return False
        SHARED_SKIPPED.inc(pairs)
        return True

    def _failed(self, what: str, exc: redis.RedisError) -> None:
        SHARED_ERRORS.inc()
        self._down_until = time.monotonic() + self._retry_s
        log.warning("shared pair scores %s (%s); not asked for the next %.0f s", what, exc, self._retry_s)

    # --- the head-query log
    def record_query(self, task: str, head: HeadQuery) -> None:
        """Note that a query was ranked (``head``); sent to Redis with the others at most every
        ``flush_every_s`` by the call that finds the interval over (a query asked once stays buffered until the
        next rank: a head query is one that comes again)."""
        with self._lock:
            self._pending.setdefault(task, {})[head.query] = head
            now = time.monotonic()
            if now - self._last_flush < self._flush_every_s:
                return
            pending, self._pending, self._last_flush = self._pending, {}, now
        self._flush(pending)

    def flush(self) -> None:
        """Send what ``record_query`` buffered (tests, shutdown)."""
        with self._lock:
            pending, self._pending, self._last_flush = self._pending, {}, time.monotonic()
        self._flush(pending)

    def _flush(self, pending: dict[str, dict[str, HeadQuery]]) -> None:
        now = time.time()
        for task, heads in pending.items():
            args: list = [now, self._keep]
            for head in heads.values():
                args += [head.query, json.dumps({"bar": head.bar, "ids": list(head.item_ids),
                                                 "next": [list(pair) for pair in head.next_in_line]})]
            try:
                self._record(keys=[self._key("headq", task), self._key("headq-info", task)], args=args)
            except redis.RedisError as exc:  # the log is a hint for warming; losing a second of it loses nothing
                SHARED_ERRORS.inc()
                log.debug("head queries not recorded: %s", exc)

    def head_queries(self, task: str) -> list[HeadQuery] | None:
        """The recorded queries of ``task``, newest first; None when Redis does not answer."""
        try:
            queries = [q.decode() for q in self._redis.zrevrange(self._key("headq", task), 0, -1)]
            infos = self._redis.hmget(self._key("headq-info", task), queries) if queries else []
        except redis.RedisError as exc:
            SHARED_ERRORS.inc()
            log.warning("head queries unreadable: %s", exc)
            return None
        out = []
        for query, info in zip(queries, infos):
            if info is not None:
                fields = json.loads(info)
                out.append(HeadQuery(query, float(fields["bar"]), tuple(fields["ids"]),
                                     tuple((item_id, text) for item_id, text in fields.get("next", ()))))
        return out

    def _key(self, name: str, task: str) -> str:
        return f"{self._prefix}{name}:{task}"

    def close(self) -> None:
        self._redis.close()


def make_pair_scores(settings: Settings) -> RedisPairScores | None:
    """The shared tier when the deployment has Redis and warming is on; None otherwise (one process, nothing
    to share: the in-process LRU is the whole cache)."""
    if not settings.redis_url or not settings.pair_warming:
        return None
    return RedisPairScores(settings)
