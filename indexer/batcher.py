"""Collect consumed records into bounded batches: last write wins per item, offsets tracked per partition.

A batch closes when it holds ``max_events`` records or its oldest record has waited
``max_wait_s`` (whichever comes first), which bounds both memory and the latency a record
spends waiting. Within a batch only the highest version of each item survives (ties: the
later offset), so a burst of updates to one item costs one encode. Every consumed offset —
applied, superseded or dead-lettered — is remembered so the batch can commit past it once
the batch is durable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from service.stream.events import DeleteEvent, UpsertEvent
from service.versioned_apply import supersedes


@dataclass(frozen=True)
class Consumed:
    """One decoded record and where it came from."""

    event: UpsertEvent | DeleteEvent
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    """Producer (create) time of the record; the event's age at apply is measured from it."""


@dataclass
class Batch:
    """What one flush applies and commits."""

    events: list[Consumed]
    """The winning record per item, in first-seen order."""
    next_offsets: dict[tuple[str, int], int]
    """(topic, partition) → the offset to commit (last consumed + 1)."""
    consumed: int
    """Records the batch covers, superseded and dead-lettered ones included."""
    superseded: int = 0
    """Records dropped because a newer version of the same item was in the batch."""

    def __len__(self) -> int:
        return len(self.events)


@dataclass
class Batcher:
    """Accumulates records until the batch is full or old enough; ``drain`` hands it over."""

    max_events: int
    max_wait_s: float
    clock: Callable[[], float] = time.monotonic
    _latest: dict[str, Consumed] = field(default_factory=dict)
    _next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    _consumed: int = 0
    _superseded: int = 0
    _opened_at: float | None = None

    def add(self, record: Consumed) -> None:
        """Take a valid record; keep it only if it is the newest version of its item so far."""
        self._track(record.topic, record.partition, record.offset)
        current = self._latest.get(record.event.item_id)
        if supersedes(record.event.version, None if current is None else current.event.version):
            if current is not None:
                self._superseded += 1
            self._latest[record.event.item_id] = record
        else:
            self._superseded += 1

    def skip(self, *, topic: str, partition: int, offset: int) -> None:
        """Count a record that was handled elsewhere (dead-lettered) so its offset gets committed."""
        self._track(topic, partition, offset)

    def _track(self, topic: str, partition: int, offset: int) -> None:
        if self._opened_at is None:
            self._opened_at = self.clock()
        key = (topic, partition)
        self._next_offsets[key] = max(self._next_offsets.get(key, 0), offset + 1)
        self._consumed += 1

    @property
    def pending(self) -> int:
        return self._consumed

    def seconds_until_due(self) -> float:
        """How long the worker may block in ``poll`` before this batch must be flushed."""
        if self._opened_at is None:
            return self.max_wait_s
        return max(0.0, self._opened_at + self.max_wait_s - self.clock())

    def due(self) -> bool:
        if self._consumed == 0:
            return False
        return self._consumed >= self.max_events or self.seconds_until_due() <= 0

    def drain(self) -> Batch:
        """Hand over everything and start afresh (kafka-python revokes every partition on a
        rebalance, so a partial drain per partition is never needed)."""
        batch = Batch(list(self._latest.values()), dict(self._next_offsets), self._consumed, self._superseded)
        self._latest, self._next_offsets = {}, {}
        self._consumed = self._superseded = 0
        self._opened_at = None
        return batch
