"""Apply one batch of item events: drop stale versions → encode → vector log → store.

The order is what makes a crash harmless (docs/indexing.md, "Exactly once in effect"):

1. read the stored versions and drop every event whose version is not newer (a re-delivered
   or out-of-order event; this is what makes re-delivery idempotent);
2. embed the surviving upserts through the inference seam (one batched call) — except those whose
   text equals the stored document's (a price- or attribute-only update): by this same order the
   stored document is the one of the item's latest vector-log record, so its vector already has
   that text, and the update goes out as an *advance* record (new version and document, no vector);
3. publish each item's new vector, an advance, or a delete record, to the compacted vector log and
   wait for the acknowledgements — replicas apply it to their in-memory indexes from there;
4. write the documents / tombstones to the store with a compare-and-set on the version.

Steps 3–4 run twice per batch: first for what needs no model (advances, deletes), then for the
embedded upserts (``apply_batch``). Step 4 is the commit marker: a crash before it leaves the stored version old, so the
re-delivered event passes step 1 again and is re-published (replicas drop the duplicate by
version); a crash after it makes the re-delivered event stale, and its vector is already in
the log. The caller commits Kafka offsets only after ``apply_batch`` returns.

Skipping the model is safe even when the stored document is not the text a replica holds (a crash
between steps 3 and 4 followed by a re-delivered batch whose last version reverts the text; a replica
bootstrapped from a compacted log): each replica compares the advance's text with the text of the
vector *its* index holds and re-embeds on a mismatch (``service/stream/follower.py``), so the worst
case is a model call in a replica, never a wrong vector.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from indexer.batcher import Batch, Consumed
from service.store.base import ItemDocument, ItemStore
from service.stream.events import DeleteEvent, UpsertEvent
from service.stream.vector_log import VectorRecord
from service.versioned_apply import ApplyResult, is_newer


class TextEncoder(Protocol):
    model_version: str

    def encode(self, texts: list[str], *, kind: str = "item") -> np.ndarray: ...


class VectorSink(Protocol):
    """Where applied vectors go: the vector-log publisher (``service.replication.VectorLogPublisher``)."""

    def publish(self, records: list[VectorRecord], *, encoder_version: str) -> None:
        """Send and wait until every record is acknowledged; raise if any is not."""
        ...


def stored_versions(store: ItemStore, item_ids: list[str]) -> list[int | None]:
    """Versions for many items: one round trip where the store offers ``item_versions``."""
    batched = getattr(store, "item_versions", None)
    if batched is not None:
        return batched(item_ids)
    return [store.item_version(item_id) for item_id in item_ids]


def fresh_events(store: ItemStore, events: list[Consumed]) -> tuple[list[Consumed], int]:
    """Events newer than what the store holds, and how many were stale."""
    versions = stored_versions(store, [rec.event.item_id for rec in events])
    fresh = [rec for rec, stored in zip(events, versions) if is_newer(rec.event.version, stored)]
    return fresh, len(events) - len(fresh)


def _make_durable(records: list[VectorRecord], docs: list[ItemDocument], deletes: list[Consumed], *,
                  store: ItemStore, sink: VectorSink, encoder_version: str) -> tuple[list[bool], list[bool]]:
    """Steps 3 and 4 for one part of a batch: publish (acknowledged), then the store's compare-and-set."""
    if records:
        sink.publish(records, encoder_version=encoder_version)
    stored = store.put_items(docs) if docs else []
    removed = store.delete_items([rec.event.item_id for rec in deletes],
                                 [rec.event.version for rec in deletes]) if deletes else []
    return stored, removed


def apply_batch(batch: Batch, *, store: ItemStore, encoder: TextEncoder, sink: VectorSink) -> ApplyResult:
    """Make the batch durable (vector log + store); safe to call again with the same events.

    Two parts, each in the order above: first the changes that need no model (advances and deletes),
    then the upserts to embed — so a price-only change or a delete never waits for its batch's encode.
    A batch holds one event per item (the batcher's last write wins), so the parts touch different
    items, and a crash between them leaves the first part stale on re-delivery and the second fresh.
    """
    started = time.perf_counter()
    fresh, stale = fresh_events(store, batch.events)
    upserts = [rec for rec in fresh if isinstance(rec.event, UpsertEvent)]
    deletes = [rec for rec in fresh if isinstance(rec.event, DeleteEvent)]
    docs: list[ItemDocument] = [rec.event.document() for rec in upserts]
    held = store.get_items([doc.item_id for doc in docs]) if docs else []
    same = [old is not None and old.text == doc.text for doc, old in zip(docs, held)]

    kept = [(rec, doc) for rec, doc, unchanged in zip(upserts, docs, same) if unchanged]
    records = [VectorRecord(doc.item_id, doc.version, rec.timestamp_ms, None, doc, advance=True) for rec, doc in kept]
    records += [VectorRecord(rec.event.item_id, rec.event.version, rec.timestamp_ms) for rec in deletes]
    stored, removed = _make_durable(records, [doc for _, doc in kept], deletes, store=store, sink=sink,
                                    encoder_version=encoder.model_version)

    embed = [(rec, doc) for rec, doc, unchanged in zip(upserts, docs, same) if not unchanged]
    vectors = encoder.encode([doc.text for _, doc in embed], kind="item") if embed else []
    records = [VectorRecord(doc.item_id, doc.version, rec.timestamp_ms, vector, doc)
               for (rec, doc), vector in zip(embed, vectors)]
    stored_new, _ = _make_durable(records, [doc for _, doc in embed], [], store=store, sink=sink,
                                  encoder_version=encoder.model_version)
    stored += stored_new
    done = [doc for _, doc in kept] + [doc for _, doc in embed]
    return ApplyResult(
        upserted=[doc.item_id for doc, ok in zip(done, stored) if ok],
        deleted=[rec.event.item_id for rec, ok in zip(deletes, removed) if ok],
        stale=stale,
        not_stored=(len(stored) - sum(stored)) + (len(removed) - sum(removed)),
        seconds=time.perf_counter() - started,
        embedded=len(embed),
        reused=len(kept),
    )
