"""Item events on ``item-updates`` (contract in shared/API.md): pydantic models and the decoder.

Every record is checked at the edge — size, UTF-8 JSON, schema, limits from settings, and
that the Kafka key names the same item — before anything reaches a model or the index.
A record that fails raises ``InvalidEvent`` with a short machine-readable ``reason`` (the
dead-letter header) and a human ``detail``; the worker sends it to the DLQ and carries on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from service.settings import Settings
from service.store.base import ItemDocument


@dataclass(frozen=True)
class EventLimits:
    """Limits an event must respect; taken from settings so the API and the stream agree."""

    max_event_bytes: int
    max_text_chars: int
    max_attributes: int
    max_item_id_chars: int = 128

    @classmethod
    def from_settings(cls, settings: Settings) -> EventLimits:
        return cls(settings.max_event_bytes, settings.max_text_chars, settings.max_attributes,
                   settings.max_item_id_chars)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    item_id: str = Field(min_length=1)
    version: int = Field(ge=0, lt=2**63)

    @field_validator("item_id")
    @classmethod
    def _item_id_within_limit(cls, value: str, info: ValidationInfo) -> str:
        limits: EventLimits | None = (info.context or {}).get("limits")
        if value != value.strip() or not value:
            raise ValueError("item_id must be non-blank without surrounding whitespace")
        if limits and len(value) > limits.max_item_id_chars:
            raise ValueError(f"item_id longer than {limits.max_item_id_chars} characters")
        return value


class UpsertEvent(_Event):
    """Create or replace an item at ``version``."""

    type: Literal["upsert"]
    title: str = Field(min_length=1)
    category: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict)
    price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    updated_at: str | None = Field(default=None, max_length=64)

    @field_validator("title", "category")
    @classmethod
    def _text_within_limit(cls, value: str, info: ValidationInfo) -> str:
        limits: EventLimits | None = (info.context or {}).get("limits")
        if limits and len(value) > limits.max_text_chars:
            raise ValueError(f"longer than {limits.max_text_chars} characters")
        if info.field_name == "title" and not value.strip():
            raise ValueError("blank title")
        return value

    @field_validator("attributes")
    @classmethod
    def _attributes_within_limit(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        limits: EventLimits | None = (info.context or {}).get("limits")
        if limits and len(value) > limits.max_attributes:
            raise ValueError(f"more than {limits.max_attributes} attributes")
        return value

    def document(self) -> ItemDocument:
        """The stored item document (the event without its ``type``)."""
        return ItemDocument(**self.model_dump(exclude={"type"}))


class DeleteEvent(_Event):
    """Delete an item; the store keeps a tombstone at ``version`` so older upserts stay dropped."""

    type: Literal["delete"]


ItemEvent = Annotated[UpsertEvent | DeleteEvent, Field(discriminator="type")]
_ADAPTER: TypeAdapter[UpsertEvent | DeleteEvent] = TypeAdapter(ItemEvent)


class InvalidEvent(ValueError):
    """A record that cannot be applied; ``reason`` is one of the dead-letter reason codes."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode_event(value: bytes | None, *, key: bytes | None, limits: EventLimits) -> UpsertEvent | DeleteEvent:
    """Bytes of one ``item-updates`` record → a validated event, or ``InvalidEvent``.

    Reasons: ``empty`` (no value), ``oversized`` (over ``max_event_bytes``), ``undecodable``
    (not UTF-8 JSON), ``invalid`` (schema or limits), ``key_mismatch`` (key ≠ item_id, which
    would break per-item ordering because partitions are chosen by key).
    """
    if not value:
        raise InvalidEvent("empty", "record has no value")
    if len(value) > limits.max_event_bytes:
        raise InvalidEvent("oversized", f"{len(value)} bytes > max_event_bytes={limits.max_event_bytes}")
    try:
        payload = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent("undecodable", str(exc)[:200]) from exc
    try:
        event = _ADAPTER.validate_python(payload, context={"limits": limits})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        raise InvalidEvent("invalid", f"{where}: {first['msg']}"[:300]) from exc
    if key is not None and key.decode("utf-8", errors="replace") != event.item_id:
        raise InvalidEvent("key_mismatch", f"key {key[:64]!r} != item_id {event.item_id!r}")
    return event


def encode_event(event: UpsertEvent | DeleteEvent) -> bytes:
    """The JSON bytes producers put on ``item-updates`` (no ``None`` fields)."""
    return event.model_dump_json(exclude_none=True).encode("utf-8")
