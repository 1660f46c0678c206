"""The vector log: records on the compacted ``item-vectors`` topic that replicas follow.

Key = item id (so compaction keeps each item's latest record and all records of one item sit
in one partition, in version order). Value, little-endian::

    b"V1" | kind u8 (1 upsert, 2 delete, 3 advance) | version i64 | event_ms i64 | dim u32 | dim × f32 | doc JSON

A delete is a *record with kind 2*, not a Kafka null-value tombstone: compaction drops
null-value records after ``delete.retention.ms``, and a replica that later rebuilt from the
seed catalogue plus the log would then resurrect the deleted item. ``event_ms`` is the
create time of the item event that caused the record, so a replica can measure event →
searchable. The ``encoder`` header names the model that made the vector; a replica serving
another encoder re-embeds the document instead of mixing vector spaces.

An *advance* (kind 3, no vector, the document) says "this version embeds the same text as the item's
previous record": the indexer sends it for price-only and attribute-only updates instead of calling the
model. A replica keeps the vector it holds when that vector was made from the document's text, and
re-embeds the document otherwise (a replica that bootstrapped from a compacted log whose latest record
for the item is an advance, or that holds another text) — so an advance can cost a model call in a replica,
never a wrong vector. Replicas must be upgraded before the indexer starts sending kind 3 (an older
replica skips it as unreadable and misses the version advance, not the vector).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from service.store.base import ItemDocument

_HEADER = struct.Struct("<2sBqqI")
_MAGIC = b"V1"
UPSERT, DELETE, ADVANCE = 1, 2, 3


@dataclass(frozen=True)
class VectorRecord:
    """One item's state after an applied event: its vector and document, or a delete."""

    item_id: str
    version: int
    event_ms: int
    vector: np.ndarray | None = None
    doc: ItemDocument | None = None
    advance: bool = False
    """True: a new version whose embedded text is unchanged (no vector; ``doc`` is required)."""

    @property
    def deleted(self) -> bool:
        return self.vector is None and not self.advance


def encode_record(record: VectorRecord) -> bytes:
    if record.advance:
        if record.doc is None:
            raise ValueError("an advance record needs the document")
        return (_HEADER.pack(_MAGIC, ADVANCE, record.version, record.event_ms, 0)
                + record.doc.model_dump_json().encode("utf-8"))
    if record.deleted:
        return _HEADER.pack(_MAGIC, DELETE, record.version, record.event_ms, 0)
    vector = np.ascontiguousarray(record.vector, dtype="<f4").reshape(-1)
    doc = record.doc.model_dump_json().encode("utf-8") if record.doc is not None else b""
    return _HEADER.pack(_MAGIC, UPSERT, record.version, record.event_ms, len(vector)) + vector.tobytes() + doc


def decode_record(key: bytes, value: bytes) -> VectorRecord:
    """Bytes → record; raises ``ValueError`` for anything that is not a V1 vector record."""
    if value is None or len(value) < _HEADER.size:
        raise ValueError("vector record too short")
    magic, kind, version, event_ms, dim = _HEADER.unpack_from(value)
    if magic != _MAGIC or kind not in (UPSERT, DELETE, ADVANCE):
        raise ValueError(f"not a vector record (magic {magic!r}, kind {kind})")
    item_id = key.decode("utf-8")
    if kind == DELETE:
        return VectorRecord(item_id, version, event_ms)
    if kind == ADVANCE:
        if len(value) <= _HEADER.size:
            raise ValueError("advance record without its document")
        doc = ItemDocument.model_validate_json(value[_HEADER.size:])
        return VectorRecord(item_id, version, event_ms, None, doc, advance=True)
    end = _HEADER.size + 4 * dim
    if len(value) < end:
        raise ValueError("vector record truncated")
    vector = np.frombuffer(value, dtype="<f4", count=dim, offset=_HEADER.size).astype(np.float32)
    doc = ItemDocument.model_validate_json(value[end:]) if len(value) > end else None
    return VectorRecord(item_id, version, event_ms, vector, doc)


class VectorLogPublisher:
    """Sends vector records to the compacted topic and waits for every acknowledgement."""

    def __init__(self, producer, *, topic: str, timeout_s: float = 10.0) -> None:
        self._producer = producer  # a KafkaProducer with acks="all"
        self._topic = topic
        self._timeout_s = timeout_s

    def publish(self, records: list[VectorRecord], *, encoder_version: str) -> None:
        headers = [("encoder", encoder_version.encode("utf-8"))]
        futures = [self._producer.send(self._topic, key=record.item_id.encode("utf-8"),
                                       value=encode_record(record), headers=headers) for record in records]
        self._producer.flush(timeout=self._timeout_s)
        for future in futures:
            future.get(timeout=self._timeout_s)  # raises the send error, if any
