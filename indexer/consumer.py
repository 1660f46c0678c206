"""Kafka plumbing of the worker: the group consumer, the producer, and the rebalance listener.

Offsets are committed by hand and only for batches that are durable (``enable_auto_commit``
is off). When the group rebalances, ``FlushOnRevoke`` makes the pending batch durable and
commits it *before* the partitions move, so the next owner starts right after it instead of
re-applying it (re-applying would be harmless, only slower).

kafka-python 3 runs rebalance callbacks on the consumer's IO thread, where the blocking
``consumer.commit`` is refused; the listener is therefore an ``AsyncConsumerRebalanceListener``
that awaits ``commit_async`` on that loop. The main thread is blocked in ``poll`` while a
rebalance runs, so the listener and the worker never touch the batch at the same time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from service.settings import KafkaSettings

log = logging.getLogger(__name__)


def make_consumer(settings: KafkaSettings, *, client_id: str) -> KafkaConsumer:
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
        reconnect_backoff_max_ms=settings.kafka_reconnect_backoff_max_ms,
    )


def make_producer(settings: KafkaSettings, *, client_id: str) -> KafkaProducer:
    """acks=all, small linger: vector records and dead letters are durable when ``flush`` returns."""
    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        linger_ms=2,
        retries=5,
        max_in_flight_requests_per_connection=1,  # keeps per-partition order across retries
        request_timeout_ms=settings.kafka_request_timeout_ms,
        reconnect_backoff_max_ms=settings.kafka_reconnect_backoff_max_ms,
    )


class FlushOnRevoke(AsyncConsumerRebalanceListener):
    """On revoke: make the open batch durable (``make_durable`` returns its offsets) and commit them."""

    def __init__(self, make_durable: Callable[[], dict[tuple[str, int], int]], consumer_ref: Callable[[], KafkaConsumer]) -> None:
        self._make_durable = make_durable
        self._consumer = consumer_ref
        self.assignments: list[set[TopicPartition]] = []
        self.revoke_commits = 0

    async def on_partitions_revoked(self, revoked) -> None:
        log.info("partitions revoked: %s; flushing the pending batch", sorted(revoked))
        next_offsets = self._make_durable()  # blocking work that does not touch this consumer
        if not next_offsets:
            return
        try:
            await self._consumer().commit_async(as_commit(next_offsets))
            self.revoke_commits += 1
        except KafkaError as exc:  # the next owner re-delivers; the apply drops the duplicates
            log.warning("commit on revoke failed (batch is durable, re-delivery is harmless): %s", exc)

    async def on_partitions_assigned(self, assigned) -> None:
        log.info("partitions assigned: %s", sorted(assigned))
        self.assignments.append(set(assigned))


def as_commit(next_offsets: dict[tuple[str, int], int]) -> dict[TopicPartition, OffsetAndMetadata]:
    return {TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in next_offsets.items()}


def commit_offsets(consumer: KafkaConsumer, next_offsets: dict[tuple[str, int], int]) -> None:
    """Synchronously commit ``offset = last applied + 1`` for each (topic, partition)."""
    if next_offsets:
        consumer.commit(as_commit(next_offsets))


def lag_by_partition(consumer: KafkaConsumer) -> dict[TopicPartition, int]:
    """Log end − position for each assigned partition (one ListOffsets round trip)."""
    assigned = consumer.assignment()
    if not assigned:
        return {}
    ends = consumer.end_offsets(list(assigned))
    return {tp: max(0, ends[tp] - consumer.position(tp)) for tp in assigned if tp in ends}
