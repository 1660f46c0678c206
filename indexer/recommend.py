"""NRT keyphrase recommendations: a second consumer group on the vector log fills the Redis cache.

For every upserted item the worker runs the serving pipeline (item tower → keyphrase ANN →
ranker relevance filter) and stores the top ``keyphrase_cache_k`` with the item version, the hash
of the item text and the model version (an upsert that keeps the cached text, a price change, costs
no ranker call); ``/v1/keyphrases/recommend`` with ``item_id`` then answers from the cache
(``"source": "cache"``) and falls back to computing when the cache is missing or stale.

Why a separate stage and not a step of ``apply_batch``: the ranker scores
``k × keyphrase_candidates_factor`` pairs per item (60 by default), about 15 items/s on two
cores, while embedding runs at hundreds per second. Inside the indexer it would cap freshness
at the ranker's speed; as its own consumer group it lags on its own (its lag is visible as
the group's lag), scales on its own machines, and a crash only delays cache fills.
Offsets are committed after the cache write; the cache write is version-guarded, so a
re-delivered or late record never replaces newer recommendations.
"""

from __future__ import annotations

import logging
import threading

from kafka import KafkaConsumer

from indexer.apply import stored_versions
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
        self.cached = 0
        self.kept = 0  # upserts whose cached keyphrases were kept (text unchanged): no ranker call
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
        finally:
            self.consumer.close(autocommit=False)

    def process(self, raw_records) -> int:
        """Cache recommendations for the newest upsert of each item still current in the store."""
        upserts = []
        for raw in raw_records:
            try:
                record = decode_record(raw.key, raw.value)
            except (ValueError, UnicodeDecodeError):
                continue  # the replicas count unreadable records; nothing to recommend
            if record.doc is not None:
                upserts.append(ItemChange(record.item_id, record.version, record.doc))
        latest = newest_per_item(upserts)
        runtime, cache_k = self.runtime, self.settings.keyphrase_cache_k
        fills = []
        model_version = runtime.recommendations_version
        for record, stored in zip(latest, stored_versions(runtime.store, [c.item_id for c in latest])):
            if stored is not None and is_newer(stored, record.version):
                continue  # superseded or deleted since: a later record (or the serving fallback) covers it
            # The log is written before the store, so the store may not hold this version yet:
            # the document travels with the record.
            cached = runtime.store.get_recommendations(record.item_id)
            if cached is not None and cached.describes(record.doc, model_version):
                self.kept += 1  # same text (a price or attribute change): the cached keyphrases still hold
                continue
            keyphrases = pipelines.recommend_keyphrases(runtime, item=record.doc, k=cache_k)
            fills.append(CachedRecommendations(item_id=record.item_id, item_version=record.version,
                                               model_version=model_version, keyphrases=keyphrases,
                                               text_hash=text_hash(record.doc.text)))
        if fills:
            runtime.store.put_recommendations(fills)
        self.cached += len(fills)
        return len(fills)
