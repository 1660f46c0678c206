"""Kafka plumbing of the worker: the group consumer, the producer, and the rebalance listener.

Offsets are committed by hand and only for batches that are durable (``enable_auto_commit``
is off). When the group rebalances, ``FlushOnRevoke`` makes the pending batch durable and
commits it *before* the partitions move, so the next owner starts right after it instead of
re-applying it (re-applying would be harmless, only slower).
"""

from __future__ import annotations

import logging
from typing import Callable

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from service.settings import Settings

log = logging.getLogger(__name__)


def make_consumer(settings: Settings, *, client_id: str) -> KafkaConsumer:
    """A group member of ``settings.kafka_group`` (not yet subscribed); records stay raw bytes."""
    return KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.kafka_group,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        request_timeout_ms=max(settings.kafka_request_timeout_ms, settings.kafka_session_timeout_ms + 5000),
        max_poll_records=settings.indexer_batch_max_events,
    )


def make_producer(settings: Settings, *, client_id: str) -> KafkaProducer:
    """acks=all, small linger: vector records and dead letters are durable when ``flush`` returns."""
    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        linger_ms=2,
        retries=5,
        max_in_flight_requests_per_connection=1,  # keeps per-partition order across retries
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )


class FlushOnRevoke(ConsumerRebalanceListener):
    """Calls ``flush`` (apply + commit) when partitions are revoked; logs assignments."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        self.assignments: list[set[TopicPartition]] = []

    def on_partitions_revoked(self, revoked) -> None:
        log.info("partitions revoked: %s; flushing the pending batch", sorted(revoked))
        self._flush()

    def on_partitions_assigned(self, assigned) -> None:
        log.info("partitions assigned: %s", sorted(assigned))
        self.assignments.append(set(assigned))


def commit_offsets(consumer: KafkaConsumer, next_offsets: dict[tuple[str, int], int]) -> None:
    """Synchronously commit ``offset = last applied + 1`` for each (topic, partition)."""
    if next_offsets:
        consumer.commit({TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                         for (topic, partition), offset in next_offsets.items()})


def lag_by_partition(consumer: KafkaConsumer) -> dict[TopicPartition, int]:
    """Log end − position for each assigned partition (one ListOffsets round trip)."""
    assigned = consumer.assignment()
    if not assigned:
        return {}
    ends = consumer.end_offsets(list(assigned))
    return {tp: max(0, ends[tp] - consumer.position(tp)) for tp in assigned if tp in ends}
