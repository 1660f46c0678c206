"""Ranker pairs scored right after the response: the few new pairs of a query this replica re-scored before.

Why: under item updates, a search this replica re-scored seconds ago comes back with one or two pairs its cache
does not hold in the re-scored set (a new item, a retitled one, one moved up by a delete above it). Running the
cross-encoder for them on the request path was the readers' tail at 300 updates/s on a 2-core box (p99 31 ms
against 18 ms with no second phase; docs/indexing.md, "2026-12-06"). So a phased rank whose re-scored set is
held but for at most ``rerank_defer_max`` pairs answers at once, those candidates keeping the first phase's
heads and place (phase 1; ``phases.keep_deferred_in_place`` in ``service/ranking/phases.py``), and hands the
pairs to this filler, which scores them so that the next request for the query finds them in the cache. A cold
query (more pairs missing, or all of them) is re-scored in full on the request path, as before.

One daemon thread per process, started on first use, at a lower CPU priority (nice ``pair_fill_nice``; on Linux
a thread's niceness is its own) so that requests come first. Pending pairs are deduplicated and bounded: past
``max_pending`` a pair is dropped and counted (the next request defers it again). A failed model call is
logged and counted, and the thread goes on. Queue and thread are written here because neither
``concurrent.futures`` (no deduplication, no bound that drops) nor the row caches (no background work) do this.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Protocol

from prometheus_client import Counter, Gauge

from service.inference.metrics import INFERENCE_REGISTRY
from service.threads import lower_cpu_priority

log = logging.getLogger(__name__)

DEFERRED = Counter("shoprank_rerank_deferred_pairs", "Pairs a phased rank left in phase 1 for the filler to score",
                   registry=INFERENCE_REGISTRY)
FILLED = Counter("shoprank_pair_fill_pairs", "Deferred pairs the filler scored into the pair cache",
                 registry=INFERENCE_REGISTRY)
DROPPED = Counter("shoprank_pair_fill_dropped", "Deferred pairs dropped because the filler's queue was full",
                  registry=INFERENCE_REGISTRY)
ERRORS = Counter("shoprank_pair_fill_errors", "Filler batches whose model call failed (their pairs stay unscored)",
                 registry=INFERENCE_REGISTRY)
PENDING = Gauge("shoprank_pair_fill_pending", "Deferred pairs waiting for the filler", registry=INFERENCE_REGISTRY)


class Scores(Protocol):
    """What the filler calls: a ``PairScorer`` (scoring stores the outputs in its caches)."""

    def score(self, lefts: Sequence[str], rights: Sequence[str], *, task: str = "query_item") -> object: ...


class PairFiller:
    """Scores deferred (left, right) pairs in a background thread, in batches of up to ``batch`` per model call."""

    def __init__(self, *, max_pending: int = 10_000, batch: int = 16, nice: int = 10) -> None:
        self.max_pending = max_pending
        self.batch = batch
        self.nice = nice
        self._pending: OrderedDict[Hashable, tuple[Scores, str, str, str]] = OrderedDict()
        self._busy = 0  # pairs taken off the queue and being scored
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def defer(self, scorer: Scores, task: str, lefts: Sequence[str], rights: Sequence[str]) -> int:
        """Queue these pairs for ``scorer`` (each once, however often deferred); returns how many were queued."""
        queued = 0
        with self._lock:
            if self._closed:
                return 0
            for left, right in zip(lefts, rights):
                key = (id(scorer), task, left, right)
                if key in self._pending:
                    continue
                if len(self._pending) >= self.max_pending:
                    DROPPED.inc()
                    continue
                self._pending[key] = (scorer, task, left, right)
                queued += 1
            if self._thread is None and queued:
                self._thread = threading.Thread(target=self._run, name="pair-filler", daemon=True)
                self._thread.start()
            PENDING.set(len(self._pending))
            self._lock.notify_all()  # wakes the thread; a wait_idle waiter re-checks and sleeps on
        DEFERRED.inc(len(lefts))
        return queued

    def pending(self) -> int:
        """Pairs queued or being scored."""
        with self._lock:
            return len(self._pending) + self._busy

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is queued or being scored (tests, and a bench settling); False on time-out."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._pending and not self._busy, timeout=timeout_s)

    def close(self) -> None:
        """Stop the thread; what is still queued is dropped (it is only a cache fill)."""
        with self._lock:
            self._closed = True
            self._pending.clear()
            PENDING.set(0)
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _next_batch(self) -> list[tuple[Scores, str, str, str]] | None:
        """Up to ``batch`` of the oldest pending pairs of one scorer and task; None once closed."""
        with self._lock:
            self._lock.wait_for(lambda: self._pending or self._closed)
            if self._closed:
                return None
            scorer, task = next(iter(self._pending.values()))[:2]
            keys = [key for key, job in self._pending.items() if job[0] is scorer and job[1] == task][: self.batch]
            jobs = [self._pending.pop(key) for key in keys]
            self._busy = len(jobs)
            PENDING.set(len(self._pending))
            return jobs

    def _run(self) -> None:
        lower_cpu_priority(self.nice)  # this thread only (Linux): requests' threads keep their priority
        while (jobs := self._next_batch()) is not None:
            scorer, task = jobs[0][:2]
            try:
                scorer.score([job[2] for job in jobs], [job[3] for job in jobs], task=task)
                FILLED.inc(len(jobs))
            except Exception:  # a cache fill must never end the thread; the next request retries
                ERRORS.inc()
                log.exception("pair filler: scoring %d deferred pairs failed", len(jobs))
            finally:
                with self._lock:
                    self._busy = 0
                    self._lock.notify_all()
