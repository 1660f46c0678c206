"""Apply one batch of item events: drop stale versions → encode → vector log → store.

The order is what makes a crash harmless (docs/indexing.md, "Exactly once in effect"):

1. read the stored versions and drop every event whose version is not newer (a re-delivered
   or out-of-order event; this is what makes re-delivery idempotent);
2. embed the surviving upserts through the inference seam (one batched call);
3. publish each item's new vector, or a delete record, to the compacted vector log and wait
   for the acknowledgements — replicas apply it to their in-memory indexes from there;
4. write the documents / tombstones to the store with a compare-and-set on the version.

Step 4 is the commit marker: a crash before it leaves the stored version old, so the
re-delivered event passes step 1 again and is re-published (replicas drop the duplicate by
version); a crash after it makes the re-delivered event stale, and its vector is already in
the log. The caller commits Kafka offsets only after ``apply_batch`` returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from indexer.batcher import Batch, Consumed
from indexer.events import DeleteEvent, UpsertEvent
from service.store.base import ItemDocument, ItemStore
from service.vector_log import VectorRecord


class TextEncoder(Protocol):
    model_version: str

    def encode(self, texts: list[str], *, kind: str = "item") -> np.ndarray: ...


class VectorSink(Protocol):
    """Where applied vectors go: the vector-log publisher (``service.replication.VectorLogPublisher``)."""

    def publish(self, records: list[VectorRecord], *, encoder_version: str) -> None:
        """Send and wait until every record is acknowledged; raise if any is not."""
        ...


@dataclass(frozen=True)
class ApplyResult:
    upserted: list[str]
    deleted: list[str]
    stale: int
    """Events dropped because the store already had their version or a newer one."""
    not_stored: int
    """Events that lost the store's compare-and-set to a concurrent writer (rare: a rebalance)."""
    seconds: float


def stored_versions(store: ItemStore, item_ids: list[str]) -> list[int | None]:
    """Versions for many items: one round trip where the store offers ``item_versions``."""
    batched = getattr(store, "item_versions", None)
    if batched is not None:
        return batched(item_ids)
    return [store.item_version(item_id) for item_id in item_ids]


def fresh_events(store: ItemStore, events: list[Consumed]) -> tuple[list[Consumed], int]:
    """Events newer than what the store holds, and how many were stale."""
    versions = stored_versions(store, [rec.event.item_id for rec in events])
    fresh = [rec for rec, stored in zip(events, versions) if stored is None or rec.event.version > stored]
    return fresh, len(events) - len(fresh)


def apply_batch(batch: Batch, *, store: ItemStore, encoder: TextEncoder, sink: VectorSink) -> ApplyResult:
    """Make the batch durable (vector log + store); safe to call again with the same events."""
    started = time.perf_counter()
    fresh, stale = fresh_events(store, batch.events)
    upserts = [rec for rec in fresh if isinstance(rec.event, UpsertEvent)]
    deletes = [rec for rec in fresh if isinstance(rec.event, DeleteEvent)]
    docs: list[ItemDocument] = [rec.event.document() for rec in upserts]
    vectors = encoder.encode([doc.text for doc in docs], kind="item")

    records = [VectorRecord(doc.item_id, doc.version, rec.timestamp_ms, vector, doc)
               for rec, doc, vector in zip(upserts, docs, vectors)]
    records += [VectorRecord(rec.event.item_id, rec.event.version, rec.timestamp_ms) for rec in deletes]
    if records:
        sink.publish(records, encoder_version=encoder.model_version)

    stored = store.put_items(docs) if docs else []
    removed = store.delete_items([rec.event.item_id for rec in deletes],
                                 [rec.event.version for rec in deletes]) if deletes else []
    return ApplyResult(
        upserted=[doc.item_id for doc, ok in zip(docs, stored) if ok],
        deleted=[rec.event.item_id for rec, ok in zip(deletes, removed) if ok],
        stale=stale,
        not_stored=(len(stored) - sum(stored)) + (len(removed) - sum(removed)),
        seconds=time.perf_counter() - started,
    )
