"""How item writes reach the index: applied in process, or (with Kafka) published and followed.

``item_writer(runtime)`` is what ``PUT``/``DELETE /v1/items`` call; ``start_replication(runtime)``
is started by the API's lifespan and keeps this process's index following the item stream.
Without ``SHOPRANK_KAFKA_BOOTSTRAP`` both are embedded: writes apply directly through
``Runtime.apply_items`` and there is nothing to follow. With it, writes are published to
``item-updates`` as the same events the stream carries (the indexer applies them), and each
replica follows the compacted vector log into its own index (``service.stream.follower``;
design in docs/indexing.md).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from service.errors import StaleVersion
from service.runtime import Runtime, lexical_index_of
from service.store.base import ItemDocument


@dataclass(frozen=True)
class WriteReceipt:
    """What happened to one write: ``applied`` here and now, or ``published`` to the stream."""

    item_id: str
    version: int
    status: Literal["applied", "published"]


class ItemWriter(Protocol):
    def upsert(self, doc: ItemDocument) -> WriteReceipt:
        """Create or replace an item; raises ``StaleVersion`` when the version is not newer."""
        ...

    def delete(self, item_id: str, version: int) -> WriteReceipt:
        """Tombstone an item at ``version``; raises ``StaleVersion`` when not newer."""
        ...


class ReplicationHandle(Protocol):
    def close(self) -> None: ...


class EmbeddedItemWriter:
    """Applies each write synchronously: once it returns, the item is searchable."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def _stale(self, item_id: str, version: int) -> StaleVersion:
        stored = self._runtime.store.item_version(item_id)
        return StaleVersion(f"item {item_id!r}: version {version} is not newer than the stored version {stored}")

    def upsert(self, doc: ItemDocument) -> WriteReceipt:
        if doc.item_id not in self._runtime.apply_items(upserts=[doc]).upserted:
            raise self._stale(doc.item_id, doc.version)
        return WriteReceipt(item_id=doc.item_id, version=doc.version, status="applied")

    def delete(self, item_id: str, version: int) -> WriteReceipt:
        if item_id not in self._runtime.apply_items(deletes=[(item_id, version)]).deleted:
            raise self._stale(item_id, version)
        return WriteReceipt(item_id=item_id, version=version, status="applied")


class _NoReplication:
    """Nothing to follow when every write is applied in process."""

    def close(self) -> None:
        return None


def item_writer(runtime: Runtime) -> ItemWriter:
    """The writer for this deployment (embedded until a Kafka bootstrap is configured)."""
    if runtime.settings.kafka_bootstrap:
        from service.stream.writer import KafkaItemWriter, shared_producer  # kafka-python only with Kafka

        settings = runtime.settings
        return KafkaItemWriter(runtime, shared_producer(settings.kafka_bootstrap, settings.kafka_request_timeout_ms,
                                                        settings.kafka_reconnect_backoff_max_ms))
    return EmbeddedItemWriter(runtime)


class _Following:
    """A running replica follower; ``close`` stops it and writes a last snapshot."""

    def __init__(self, follower) -> None:
        self.follower = follower

    def close(self) -> None:
        self.follower.close()


def replica_id(settings) -> str:
    return settings.replica_id or f"{socket.gethostname()}-{settings.port}"


def start_replication(runtime: Runtime, *, wait_s: float | None = 120.0,
                      on_applied: Callable | None = None) -> ReplicationHandle:
    """Start following the vector log into ``runtime`` (a no-op without Kafka).

    Restores this replica's last snapshot when it matches (swapping ``runtime.items`` and filling
    ``runtime.searchable`` with the versions that index holds), then
    replays the log from the snapshot's offsets and returns once caught up (``wait_s``).
    """
    settings = runtime.settings
    if not settings.kafka_bootstrap:
        return _NoReplication()
    from service.stream.follower import ReplicaFollower
    from service.stream.topics import ensure_topics

    ensure_topics(settings)
    follower = ReplicaFollower(settings=settings, index=runtime.items, store=runtime.store,
                               encoder=runtime.encoder, local_store=not settings.redis_url,
                               snapshot_dir=settings.state_dir / "replicas" / replica_id(settings),
                               versions=runtime.searchable, on_applied=on_applied, lexical=runtime.lexical)
    restored = follower.restore(settings=settings)
    if restored is not None:
        runtime.items = restored
        if runtime.lexical is not None:  # the titles of the restored documents, not the seed's
            runtime.lexical = lexical_index_of(settings, (doc for batch in runtime.store.iter_items() for doc in batch))
            follower.lexical = runtime.lexical
    follower.start(wait_s=wait_s)
    return _Following(follower)
