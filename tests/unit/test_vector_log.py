"""Vector-log records round-trip; anything else is refused rather than applied."""

from __future__ import annotations

import numpy as np
import pytest

from service.store.base import ItemDocument
from service.stream.vector_log import VectorRecord, decode_record, encode_record


def test_upsert_and_delete_round_trip() -> None:
    vector = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    doc = ItemDocument(item_id="100001", version=7, title="angle bracket", category="hardware", price=3.5)
    back = decode_record(b"100001", encode_record(VectorRecord("100001", 7, 1_700_000_000_123, vector, doc)))
    assert (back.item_id, back.version, back.event_ms, back.deleted) == ("100001", 7, 1_700_000_000_123, False)
    assert np.array_equal(back.vector, vector) and back.doc == doc
    gone = decode_record(b"100001", encode_record(VectorRecord("100001", 8, 5)))
    assert gone.deleted and gone.version == 8 and gone.doc is None


@pytest.mark.parametrize("value", [b"", b"short", b"XX" + bytes(30), encode_record(VectorRecord("a", 1, 0))[:-1]])
def test_foreign_or_truncated_bytes_are_refused(value: bytes) -> None:
    with pytest.raises(ValueError):
        decode_record(b"a", value)


def test_truncated_vector_is_refused() -> None:
    full = encode_record(VectorRecord("a", 1, 0, np.ones(8, np.float32), None))
    with pytest.raises(ValueError, match="truncated"):
        decode_record(b"a", full[:-4])
