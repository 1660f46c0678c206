"""NRT keyphrase recommendations: a second consumer group on the vector log fills the Redis cache.

For every changed item in scope the worker runs the serving pipeline (item tower → keyphrase ANN →
ranker relevance filter) and stores the top ``keyphrase_cache_k`` with the item version, the hash
of the item text and the model version (an upsert that keeps the cached text, a price change, costs
no ranker call); ``/v1/keyphrases/recommend`` with ``item_id`` then answers from the cache
(``"source": "cache"``) and falls back to computing when the cache is missing or stale.

Which items are in scope (``recommend_scope``): **asked** (the default) = those whose keyphrases are
cached, that is asked for within ``keyphrase_cache_ttl_s`` (each request extends the entry's life): a
retitled item that callers want is recomputed here, off the request path, and the next request is a cache
hit; an item nobody asked for costs nothing until its first request. **all** = every changed item.

Why a separate stage and not a step of ``apply_batch``: the ranker scores
``k × keyphrase_candidates_factor`` pairs per item (60 by default), about 15 items/s on two
cores, while embedding runs at hundreds per second. Inside the indexer it would cap freshness
at the ranker's speed; as its own consumer group it lags on its own (its lag is visible as
the group's lag), scales on its own machines, and a crash only delays cache fills. The "asked" scope
is what lets it keep up on a small host: at 300 updates/s of which a third change a title, "all" would
need seven times that ranker; the asked items are the few a catalogue's callers care about at the time.
Offsets are committed after the cache write; the cache write is version-guarded, so a
re-delivered or late record never replaces newer recommendations.

The same poll also warms ranker pair scores (``indexer/pair_warmer.py``, with Redis and
``SHOPRANK_PAIR_WARMING``): each retitled or new item against the head queries it would now be re-scored
for, so the search that meets it reads the pair from Redis instead of running the cross-encoder.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

import numpy as np
from kafka import KafkaConsumer

from indexer.apply import stored_versions
from indexer.metrics import RECOMMENDATIONS
from indexer.pair_warmer import PairWarmer
from service import pipelines
from service.catalogue import text_hash
from service.runtime import Runtime
from service.settings import Settings
from service.store.base import CachedRecommendations
from service.stream.vector_log import decode_record
from service.versioned_apply import ItemChange, is_newer, newest_per_item

log = logging.getLogger(__name__)


def recommendations_group(settings: Settings) -> str:
    return f"{settings.kafka_group}-recommendations"


class RecommendationWorker:
    """Consumes ``kafka_vectors_topic`` and caches keyphrase recommendations for changed items."""

    def __init__(self, *, settings: Settings, runtime: Runtime, client_id: str = "recommendations",
                 max_records: int = 16) -> None:
        self.settings = settings
        self.runtime = runtime
        self.outcomes: Counter[str] = Counter()  # changed items per outcome (shoprank_recommend_items_total)
        # retitled and new items' pairs with the head queries, scored before a search asks (indexer/pair_warmer.py)
        self.warmer = PairWarmer(runtime) if runtime.pair_scores is not None else None
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, group_id=recommendations_group(settings),
            client_id=client_id, enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms, max_poll_records=max_records,
            request_timeout_ms=max(settings.kafka_request_timeout_ms, settings.kafka_session_timeout_ms + 5000),
            reconnect_backoff_max_ms=settings.kafka_reconnect_backoff_max_ms,
        )

    def run(self, *, stop: threading.Event) -> None:
        self.consumer.subscribe([self.settings.kafka_vectors_topic])
        try:
            while not stop.is_set():
                polled = self.consumer.poll(timeout_ms=200)
                records = [rec for batch in polled.values() for rec in batch]
                if records:
                    self.process(records)
                    self.consumer.commit()  # the positions after this poll: everything above is cached
                if self.warmer is not None:
                    self.warmer.warm_next_in_line()  # a few at a time: the log's records come first
        finally:
            self.consumer.close(autocommit=False)

    def process(self, raw_records) -> int:
        """Cache recommendations for the newest upsert of each item still current in the store and in scope;
        returns how many were computed."""
        upserts = []
        for raw in raw_records:
            try:
                record = decode_record(raw.key, raw.value)
            except (ValueError, UnicodeDecodeError):
                continue  # the replicas count unreadable records; nothing to recommend
            if record.doc is not None:
                upserts.append(ItemChange(record.item_id, record.version, record.doc, vector=record.vector))
        latest = newest_per_item(upserts)
        runtime, cache_k = self.runtime, self.settings.keyphrase_cache_k
        model_version = runtime.recommendations_version
        stored = stored_versions(runtime.store, [c.item_id for c in latest])
        current = [change for change, version in zip(latest, stored)
                   if version is None or not is_newer(version, change.version)]
        # superseded or deleted since: a later record (or the serving fallback) covers it
        self._count("superseded", len(latest) - len(current))
        retitled = [change for change in current if change.vector is not None]  # a new text (advances carry none)
        if self.warmer is not None and retitled:  # first: a few ms a pair, and searches meet them soonest
            self.warmer.warm([c.doc for c in retitled], np.stack([c.vector for c in retitled]))
        fills = []
        # The log is written before the store, so the store may not hold this version yet: the document
        # travels with the record.
        for change, cached in zip(current, runtime.store.peek_recommendations([c.item_id for c in current])):
            if cached is not None and cached.describes(change.doc, model_version):
                self._count("kept")  # same text (a price or attribute change): the cached keyphrases still hold
                continue
            if cached is None and self.settings.recommend_scope == "asked":
                self._count("not_asked")  # computed on its first request, then kept fresh here
                continue
            keyphrases = pipelines.recommend_keyphrases(runtime, item=change.doc, k=cache_k)
            fills.append(CachedRecommendations(item_id=change.item_id, item_version=change.version,
                                               model_version=model_version, keyphrases=keyphrases,
                                               text_hash=text_hash(change.doc.text)))
        if fills:
            runtime.store.put_recommendations(fills)
        self._count("computed", len(fills))
        return len(fills)

    def _count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] += n
        RECOMMENDATIONS.labels(outcome).inc(n)
