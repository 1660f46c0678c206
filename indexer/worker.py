"""The indexer's run loop: poll → validate (bad → DLQ) → batch → apply → commit.

One ``IndexerWorker`` is one member of the consumer group; start more (processes or machines)
and Kafka spreads the partitions over them. The loop blocks in ``poll`` at most until the
open batch is due, so a record waits at most ``indexer_batch_max_wait_s`` before its batch is
applied. A failing dependency (Redis, the broker) is retried with back-off on the same batch —
the apply is idempotent, and the dead letters' flush sends again only the letters the broker did
not take — and the worker exits after ``max_apply_attempts`` of either step so a supervisor
restarts it from the last committed offsets. A commit the broker cannot take is not a reason to
exit: the batch is already durable, so its offsets ride along with the next commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from kafka.errors import CommitFailedError, KafkaError

from indexer import metrics
from indexer.apply import TextEncoder, VectorSink, apply_batch
from indexer.batcher import Batcher, Consumed
from indexer.consumer import FlushOnRevoke, commit_offsets, lag_by_partition
from indexer.dead_letter import DeadLetters
from service.errors import DependencyUnavailable
from service.settings import Settings
from service.store.base import ItemStore
from service.stream.events import EventLimits, InvalidEvent, decode_event
from service.versioned_apply import ApplyResult

T = TypeVar("T")

log = logging.getLogger(__name__)


class IndexerWorker:
    """Consumes ``settings.kafka_topic`` in ``settings.kafka_group`` and applies item events."""

    def __init__(self, *, settings: Settings, consumer, store: ItemStore, encoder: TextEncoder,
                 sink: VectorSink, dead_letters: DeadLetters, max_apply_attempts: int = 6,
                 lag_every_s: float = 5.0, closers: tuple = ()) -> None:
        self.settings = settings
        self.consumer = consumer
        self.store = store
        self.encoder = encoder
        self.sink = sink
        self.dead_letters = dead_letters
        self.limits = EventLimits.from_settings(settings)
        self.batcher = Batcher(max_events=settings.indexer_batch_max_events,
                               max_wait_s=settings.indexer_batch_max_wait_s)
        self.max_apply_attempts = max_apply_attempts
        self.lag_every_s = lag_every_s
        self.closers = closers  # what ``run`` releases on exit (producer, store)
        self.listener = FlushOnRevoke(self.make_durable, lambda: self.consumer)
        self.applied_batches = 0
        self.failed_commits = 0
        self._uncommitted: dict[tuple[str, int], int] = {}  # durable, but their commit failed
        self._lag_at = 0.0

    def run(self, *, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; then make the open batch durable, commit and return."""
        self.consumer.subscribe([self.settings.kafka_topic], listener=self.listener)
        try:
            while not stop.is_set():
                self.poll_once()
            self.flush()
        finally:
            self.consumer.close(autocommit=False)
            for close in self.closers:
                close()

    def poll_once(self) -> None:
        wait_s = self.batcher.seconds_until_due() if self.batcher.pending else self.batcher.max_wait_s
        polled = self.consumer.poll(timeout_ms=max(1, int(wait_s * 1000)))
        for records in polled.values():
            for record in records:
                self.take(record)
                if self.batcher.due():
                    self.flush()
        if self.batcher.due():
            self.flush()
        self._report_lag()

    def take(self, record) -> None:
        """Validate one raw record: into the batch, or to the dead-letter topic."""
        try:
            event = decode_event(record.value, key=record.key, limits=self.limits)
        except InvalidEvent as bad:
            self.dead_letters.send(key=record.key, value=record.value, reason=bad.reason, detail=bad.detail,
                                   source_topic=record.topic, source_partition=record.partition,
                                   source_offset=record.offset)
            self.batcher.skip(topic=record.topic, partition=record.partition, offset=record.offset)
            metrics.EVENTS.labels("dead_letter").inc()
            metrics.DEAD_LETTERS.labels(bad.reason).inc()
            log.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, bad)
            return
        self.batcher.add(Consumed(event, record.topic, record.partition, record.offset, record.timestamp))

    def flush(self) -> None:
        """Make everything consumed so far durable, then commit its offsets (and any left over)."""
        self._uncommitted.update(self.make_durable())
        owned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        self._uncommitted = {tp: offset for tp, offset in self._uncommitted.items() if tp in owned}
        if not self._uncommitted:
            return
        try:
            commit_offsets(self.consumer, self._uncommitted)
        except CommitFailedError as exc:
            # The group moved on; the new owner re-delivers and the apply drops the duplicates.
            log.warning("commit failed after a rebalance (batch is durable, re-delivery is harmless): %s", exc)
        except KafkaError as exc:
            # The broker is unreachable, but the batch is durable: exiting would only stop indexing
            # until a supervisor noticed. Keep its offsets and commit them with the next batch.
            self.failed_commits += 1
            log.warning("commit failed (%s); the batch is durable, its offsets go with the next commit", exc)
            return
        self._uncommitted = {}

    def make_durable(self) -> dict[tuple[str, int], int]:
        """Apply the open batch and flush its dead letters; returns the offsets it allows to commit."""
        batch = self.batcher.drain()
        if not batch.consumed:
            return {}
        result = self._with_retries("apply", lambda: apply_batch(batch, store=self.store, encoder=self.encoder,
                                                                sink=self.sink)) if batch.events else None
        timeout_s = self.settings.kafka_request_timeout_ms / 1000
        self._with_retries("dead-letter flush", lambda: self.dead_letters.flush(timeout_s=timeout_s))
        self.applied_batches += 1
        self._record(batch, result)
        return batch.next_offsets

    def _with_retries(self, what: str, step: Callable[[], T]) -> T:
        """Run one step of making a batch durable, again with backoff while Redis or the broker is away (about
        12 s over ``max_apply_attempts``); past that the error ends the worker and the batch is re-delivered."""
        for attempt in range(1, self.max_apply_attempts + 1):
            try:
                return step()
            except (DependencyUnavailable, KafkaError) as exc:
                if attempt == self.max_apply_attempts:
                    raise
                delay_s = min(10.0, 0.2 * 2 ** attempt)
                log.warning("%s failed (%s); retrying the same batch in %.1fs", what, exc, delay_s)
                time.sleep(delay_s)
        raise AssertionError("unreachable")

    def _record(self, batch, result: ApplyResult | None) -> None:
        now_ms = time.time() * 1000
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.EVENTS.labels("superseded").inc(batch.superseded)
        if result is None:
            return
        metrics.APPLY_LATENCY.observe(result.seconds)
        metrics.EVENTS.labels("applied").inc(len(result.upserted) + len(result.deleted))
        metrics.EVENTS.labels("stale").inc(result.stale + result.not_stored)
        metrics.EMBEDDINGS.labels("embedded").inc(result.embedded)
        metrics.EMBEDDINGS.labels("reused").inc(result.reused)
        for rec in batch.events:
            metrics.EVENT_AGE.observe(max(0.0, now_ms - rec.timestamp_ms) / 1000)

    def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_at < self.lag_every_s:
            return
        self._lag_at = now
        try:
            for tp, lag in lag_by_partition(self.consumer).items():
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
        except KafkaError as exc:  # metrics must never stop the loop
            log.debug("lag not available: %s", exc)


def indexer_process_settings(settings: Settings) -> Settings:
    """The settings with the indexer's own ONNX Runtime budget (``indexer_intra_op_threads``,
    ``indexer_ort_allow_spinning``) in place of the API's (``intra_op_threads``, ``ort_allow_spinning``)."""
    return settings.model_copy(update={"intra_op_threads": settings.indexer_intra_op_threads,
                                       "ort_allow_spinning": settings.indexer_ort_allow_spinning})


def build_worker(settings: Settings, *, client_id: str | None = None) -> IndexerWorker:
    """Wire a worker from settings: Redis store, encoder through the inference seam, Kafka clients."""
    import os
    import socket

    from indexer.consumer import make_consumer, make_producer
    from service.inference.factory import make_backend, make_encoder
    from service.store.redis_store import RedisStore
    from service.stream.topics import ensure_topics
    from service.stream.vector_log import VectorLogPublisher

    if not settings.kafka_bootstrap or not settings.redis_url:
        raise ValueError("the indexer needs SHOPRANK_KAFKA_BOOTSTRAP and SHOPRANK_REDIS_URL "
                         "(versions must be durable and shared by every worker)")
    client_id = client_id or f"indexer-{socket.gethostname()}-{os.getpid()}"
    settings = indexer_process_settings(settings)
    ensure_topics(settings)
    producer = make_producer(settings, client_id=client_id)
    store = RedisStore(settings)
    return IndexerWorker(
        settings=settings,
        consumer=make_consumer(settings, client_id=client_id),
        store=store,
        encoder=make_encoder(make_backend(settings), settings),
        sink=VectorLogPublisher(producer, topic=settings.kafka_vectors_topic,
                                timeout_s=settings.kafka_request_timeout_ms / 1000),
        dead_letters=DeadLetters(producer, topic=settings.kafka_dlq_topic),
        closers=(producer.close, store.close),
    )
