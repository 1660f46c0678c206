"""Item event decoding: every way a record can be bad gets its own reason; good ones round-trip."""

from __future__ import annotations

import json

import pytest

from service.stream.events import (
    DeleteEvent,
    EventLimits,
    InvalidEvent,
    UpsertEvent,
    decode_event,
    encode_event,
)

LIMITS = EventLimits(max_event_bytes=2048, max_text_chars=100, max_attributes=3)


def raw(**fields) -> bytes:
    return json.dumps(fields).encode()


def upsert(**overrides) -> dict:
    return {"type": "upsert", "item_id": "100001", "version": 7, "title": "cordless drill", **overrides}


def reason(value: bytes | None, key: bytes | None = b"100001") -> str:
    with pytest.raises(InvalidEvent) as err:
        decode_event(value, key=key, limits=LIMITS)
    return err.value.reason


def test_valid_upsert_and_delete_round_trip() -> None:
    event = decode_event(raw(**upsert(category="tools", attributes={"brand": "x"}, price=12.5,
                                      updated_at="2026-11-22T01:02:03Z")), key=b"100001", limits=LIMITS)
    assert isinstance(event, UpsertEvent) and event.price == 12.5
    assert decode_event(encode_event(event), key=b"100001", limits=LIMITS) == event
    doc = event.document()
    assert (doc.item_id, doc.version, doc.text) == ("100001", 7, "cordless drill | tools")
    gone = decode_event(raw(type="delete", item_id="100001", version=8), key=None, limits=LIMITS)
    assert isinstance(gone, DeleteEvent) and gone.version == 8


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"\xff\xfe not utf-8", "undecodable"),
        (b"{not json", "undecodable"),
        (b"[1, 2]", "invalid"),
        (raw(**upsert(type="rename")), "invalid"),
        (raw(item_id="100001", version=1, title="no type"), "invalid"),
        (raw(**upsert(version=-1)), "invalid"),
        (raw(**upsert(version="seven")), "invalid"),
        (raw(**upsert(title="")), "invalid"),
        (raw(**upsert(title="   ")), "invalid"),
        (raw(**upsert(title="x" * 101)), "invalid"),
        (raw(**upsert(attributes={"a": 1, "b": 2, "c": 3, "d": 4})), "invalid"),
        (raw(**upsert(price=-1)), "invalid"),
        (raw(**upsert(unexpected="field")), "invalid"),
        (raw(**upsert(item_id=" 100001")), "invalid"),
        (raw(**upsert(item_id="9" * 129)), "invalid"),
        (raw(type="delete", item_id="100001"), "invalid"),
        (raw(**upsert(attributes={"blob": "x" * 3000})), "oversized"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(value: bytes | None, expected: str) -> None:
    assert reason(value) == expected


def test_key_must_name_the_same_item() -> None:
    assert reason(raw(**upsert()), key=b"999") == "key_mismatch"


def test_limits_come_from_settings() -> None:
    from service.settings import Settings

    limits = EventLimits.from_settings(Settings(max_text_chars=10, max_event_bytes=300, max_attributes=1))
    with pytest.raises(InvalidEvent, match="longer than 10"):
        decode_event(raw(**upsert(title="a title longer than ten")), key=None, limits=limits)
