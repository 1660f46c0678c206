"""Prometheus metrics of the indexer worker and the replica follower.

The worker serves them on ``settings.indexer_metrics_port`` (``start_http_server``); the
replica follower's own metrics live in ``service.replication``.
Event age is measured from the Kafka record's create time, so it includes time queued in
the broker; apply latency is one batch from drain to durable.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_AGE_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0)

CONSUMER_LAG = Gauge(
    "shoprank_indexer_consumer_lag_records", "Records between the committed position and the log end",
    ["topic", "partition"],
)
BATCH_SIZE = Histogram(
    "shoprank_indexer_batch_size_records", "Records per flushed batch (after last-write-wins)",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
APPLY_LATENCY = Histogram(
    "shoprank_indexer_apply_latency_seconds", "Encode + publish + store + commit time of one batch",
    buckets=_AGE_BUCKETS_S,
)
EVENT_AGE = Histogram(
    "shoprank_indexer_event_age_seconds", "Record create time → its batch durable", buckets=_AGE_BUCKETS_S,
)
EVENTS = Counter(
    "shoprank_indexer_events_total", "Consumed records by outcome", ["outcome"],
)
"""outcome: applied | stale (version not newer than stored) | superseded (newer in the same batch) | dead_letter"""
DEAD_LETTERS = Counter("shoprank_indexer_dead_letters_total", "Records sent to the DLQ by reason", ["reason"])
EMBEDDINGS = Counter(
    "shoprank_indexer_item_embeddings_total",
    "Fresh upserts by outcome: embedded (a model call) or reused (text unchanged: an advance record, no model call)",
    ["outcome"],
)
RECOMMENDATIONS = Counter(
    "shoprank_recommend_items_total",
    "`indexer recommend`: changed items by outcome",
    ["outcome"],
)
"""outcome: computed (a ranker call, cached) | kept (same text: the cached keyphrases hold) | not_asked (scope "asked",
nothing cached: computed on the first request) | superseded (a newer version or a delete is stored)"""
PAIRS_WARMED = Counter(
    "shoprank_pair_warm_pairs_total",
    "(head query, changed item) pairs `indexer recommend` scored and shared before a search asked for them",
)
PAIRS_PENDING = Gauge(
    "shoprank_pair_warm_pending",
    "Next-in-line (head query, item) pairs `indexer recommend` has yet to score (it scores a few after each poll)",
)
