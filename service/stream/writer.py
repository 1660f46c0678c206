"""The Kafka item writer: ``PUT`` / ``DELETE /v1/items`` published as item events for the indexer."""

from __future__ import annotations

from functools import lru_cache

from kafka import KafkaProducer
from kafka.errors import KafkaError

from service.errors import DependencyUnavailable, StaleVersion
from service.replication import WriteReceipt
from service.runtime import Runtime
from service.store.base import ItemDocument
from service.versioned_apply import is_newer


class KafkaItemWriter:
    """Publishes each write as an item event keyed by item id; the indexer applies it.

    A version that the store already holds (or exceeds) is refused here with ``StaleVersion``
    so the caller gets its 409 at once; the indexer re-checks, because a newer write can race
    in between. The call returns once the broker acknowledged the event (acks=all).
    """

    def __init__(self, runtime: Runtime, producer: KafkaProducer) -> None:
        self._runtime = runtime
        self._producer = producer
        self._topic = runtime.settings.kafka_topic
        self._timeout_s = runtime.settings.kafka_request_timeout_ms / 1000

    def _check(self, item_id: str, version: int) -> None:
        stored = self._runtime.store.item_version(item_id)
        if not is_newer(version, stored):
            raise StaleVersion(f"item {item_id!r}: version {version} is not newer than the stored version {stored}")

    def _publish(self, event) -> WriteReceipt:
        from service.stream.events import encode_event  # the event contract lives with its consumer

        try:
            self._producer.send(self._topic, key=event.item_id.encode("utf-8"),
                                value=encode_event(event)).get(timeout=self._timeout_s)
        except KafkaError as exc:
            raise DependencyUnavailable(f"kafka: {exc}", retry_after_s=2) from exc
        return WriteReceipt(item_id=event.item_id, version=event.version, status="published")

    def upsert(self, doc: ItemDocument) -> WriteReceipt:
        from service.stream.events import UpsertEvent

        self._check(doc.item_id, doc.version)
        return self._publish(UpsertEvent(type="upsert", **doc.model_dump()))

    def delete(self, item_id: str, version: int) -> WriteReceipt:
        from service.stream.events import DeleteEvent

        self._check(item_id, version)
        return self._publish(DeleteEvent(type="delete", item_id=item_id, version=version))


@lru_cache(maxsize=4)
def shared_producer(bootstrap: str, timeout_ms: int, reconnect_backoff_max_ms: int) -> KafkaProducer:
    """One producer per broker address for the process (KafkaProducer is thread-safe)."""
    # max_block_ms: a send waiting for metadata (the broker unreachable) gives up with the request timeout,
    # so a PUT answers 503 in bounded time instead of hanging for kafka-python's default 60 s
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, retries=5,
                         client_id="shoprank-api", max_block_ms=timeout_ms, request_timeout_ms=timeout_ms,
                         reconnect_backoff_max_ms=reconnect_backoff_max_ms)
