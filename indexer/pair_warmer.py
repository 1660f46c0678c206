"""Pair scores warmed off the request path: each changed item against the head queries it would now reach.

A search re-scores the first ``rerank_depth`` of its candidates with the cross-encoder. A retitled or new item
among them is a pair no cache holds, and that model call on the request path was the readers' tail under a
stream of updates (docs/indexing.md, "2026-12-06: pair scores warmed off the request path"). The API records
every ranked query with the items it re-scored and its *entry bar*, the cosine a candidate needed to be among the
``rerank_depth`` closest to the query (``service/store/pair_scores.py``). Here, for each item whose text a poll
of the vector log changed, the pair is scored by the ranker and shared through Redis for

1. every recorded query that re-scored the item last time (a retitled item mostly stays where it was: exact);
2. with ``pair_warm_margin`` set (off by default: on two cores it cost more than it saved, see the docs), every
   recorded query whose bar, less the margin, the item's cosine clears (a newcomer), closest first,

at most ``pair_warm_max_pairs`` a poll. The next search that meets the item reads the pair instead of computing
it. And after every poll, a few of the pairs *next in line* (the first phase's rows just past the re-scored ones,
``pair_warm_next`` per query): a delete or a retitle above them moves them up, unchanged, into the re-scored rows,
which was most of what was still computed on read with the first two rules alone. Rule 2 is a proxy: the first
phase, not the cosine, picks the re-scored rows, and lexical retrieval brings candidates of any cosine, so a
newcomer can still be scored on its request (the bench's "pairs computed on read" says how often). It runs in ``indexer recommend`` because that process already follows the vector log
with the ranker loaded, at the workers' low priority (``SHOPRANK_INDEXER_SCHED_IDLE``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import numpy as np

from indexer.metrics import PAIRS_PENDING, PAIRS_WARMED
from service.matryoshka import matryoshka_cut
from service.runtime import Runtime
from service.store.base import ItemDocument

TASK = "query_item"  # items change, so the pairs that go cold are query–item ones


def pairs_to_warm(cosines: np.ndarray | None, bars: np.ndarray, *, margin: float | None, limit: int,
                  rescored: Sequence[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """(query row, item column) pairs to score: ``rescored`` (the items each query re-scored last time) first,
    then those of ``cosines`` (queries × items) at or above their query's bar less ``margin`` (None: none, and
    no cosines needed), most clearance first; each pair once, at most ``limit``."""
    if margin is None:
        return list(dict.fromkeys(rescored))[:limit]
    slack = cosines - (np.asarray(bars, dtype=np.float32)[:, None] - margin)
    rows, cols = np.nonzero(slack >= 0)
    order = np.argsort(-slack[rows, cols], kind="stable")
    pairs = dict.fromkeys([*rescored, *zip(rows[order].tolist(), cols[order].tolist())])
    return list(pairs)[:limit]


class PairWarmer:
    """Scores (head query, changed item) pairs into the shared tier of ``runtime.scorer``."""

    def __init__(self, runtime: Runtime, *, refresh_s: float = 2.0, next_per_poll: int = 32) -> None:
        if runtime.pair_scores is None:
            raise ValueError("pair warming needs the shared pair scores (SHOPRANK_REDIS_URL, SHOPRANK_PAIR_WARMING)")
        self.runtime = runtime
        self.settings = runtime.settings
        self.refresh_s = refresh_s
        self.next_per_poll = next_per_poll
        self.warmed = 0
        self._next: dict[tuple[str, str], None] = {}  # (query, text) next in line, not scored here yet (ordered)
        self._next_done: set[tuple[str, str]] = set()
        self._queries: list[str] = []
        self._by_item: dict[str, list[int]] = {}  # item id → rows of the queries that re-scored it
        self._matrix = np.zeros((0, runtime.encoder.dim), dtype=np.float32)
        self._bars = np.zeros(0, dtype=np.float32)
        self._read_at = float("-inf")

    def warm(self, docs: Sequence[ItemDocument], vectors: np.ndarray) -> int:
        """Score and share the pairs of these changed items (their new documents and vectors) worth warming;
        returns how many."""
        self._refresh()
        if not self._queries or not len(docs):
            return 0
        margin = self.settings.pair_warm_margin
        cosines = (None if margin is None  # the newcomer rule is off: no query vectors were made
                   else self._matrix @ matryoshka_cut(np.asarray(vectors, dtype=np.float32), self._matrix.shape[1]).T)
        rescored = [(q, i) for i, doc in enumerate(docs) for q in self._by_item.get(doc.item_id, ())]
        pairs = pairs_to_warm(cosines, self._bars, margin=margin,
                              limit=self.settings.pair_warm_max_pairs, rescored=rescored)
        if pairs:
            self.runtime.scorer.score([self._queries[q] for q, _ in pairs], [docs[i].text for _, i in pairs],
                                      task=TASK)
        self.warmed += len(pairs)
        PAIRS_WARMED.inc(len(pairs))
        return len(pairs)

    def warm_next_in_line(self) -> int:
        """Score up to ``next_per_poll`` of the next-in-line pairs not scored yet; returns how many."""
        self._refresh()
        batch = list(itertools.islice(self._next, self.next_per_poll))
        for key in batch:
            del self._next[key]
            self._next_done.add(key)
        if batch:
            self.runtime.scorer.score([query for query, _ in batch], [text for _, text in batch], task=TASK)
        self.warmed += len(batch)
        PAIRS_WARMED.inc(len(batch))
        PAIRS_PENDING.set(len(self._next))
        return len(batch)

    def _refresh(self) -> None:
        """Re-read the head queries at most every ``refresh_s``; their vectors (the newcomer rule's, from the
        encoder's LRU) only with a ``pair_warm_margin``."""
        if time.monotonic() - self._read_at < self.refresh_s:
            return
        self._read_at = time.monotonic()
        head = self.runtime.pair_scores.head_queries(TASK)
        if head is None:
            return  # Redis did not answer: warm for the queries read last time
        self._queries = [h.query for h in head]
        self._bars = np.array([h.bar for h in head], dtype=np.float32)
        self._by_item = {}
        for row, h in enumerate(head):
            for item_id in h.item_ids:
                self._by_item.setdefault(item_id, []).append(row)
        if self.settings.pair_warm_margin is not None:
            self._matrix = (self.runtime.encoder.encode(self._queries, kind="query") if head
                            else np.zeros((0, self.runtime.encoder.dim), dtype=np.float32))
        if len(self._next_done) > 50 * max(1, self.settings.pair_warm_queries):
            self._next_done.clear()  # bounded; a pair scored again costs an LRU or Redis look-up, not the model
        for h in head:
            for _, text in h.next_in_line:
                if (h.query, text) not in self._next_done:
                    self._next[(h.query, text)] = None
        PAIRS_PENDING.set(len(self._next))
