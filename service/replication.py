"""How item writes reach the index: applied in process, or (with Kafka) published and followed.

``item_writer(runtime)`` is what ``PUT``/``DELETE /v1/items`` call; ``start_replication(runtime)``
is started by the API's lifespan and keeps this process's index following the item stream.
Without ``SHOPRANK_KAFKA_BOOTSTRAP`` both are embedded: writes apply directly through
``Runtime.apply_items`` and there is nothing to follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from service.errors import StaleVersion
from service.runtime import Runtime
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
        if not self._runtime.apply_items(upserts=[doc]).upserted[0]:
            raise self._stale(doc.item_id, doc.version)
        return WriteReceipt(item_id=doc.item_id, version=doc.version, status="applied")

    def delete(self, item_id: str, version: int) -> WriteReceipt:
        if not self._runtime.apply_items(deletes=[(item_id, version)]).deleted[0]:
            raise self._stale(item_id, version)
        return WriteReceipt(item_id=item_id, version=version, status="applied")


class _NoReplication:
    """Nothing to follow when every write is applied in process."""

    def close(self) -> None:
        return None


def item_writer(runtime: Runtime) -> ItemWriter:
    """The writer for this deployment (embedded until a Kafka bootstrap is configured)."""
    return EmbeddedItemWriter(runtime)


def start_replication(runtime: Runtime) -> ReplicationHandle:
    """Start following the item stream into ``runtime`` (a no-op without Kafka)."""
    return _NoReplication()
