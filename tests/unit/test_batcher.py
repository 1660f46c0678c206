"""Batcher: last write wins per item, size and time bounds, offsets cover every consumed record."""

from __future__ import annotations

from indexer.batcher import Batcher, Consumed
from service.stream.events import DeleteEvent, UpsertEvent


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def up(item: str, version: int, *, partition: int = 0, offset: int = 0) -> Consumed:
    event = UpsertEvent(type="upsert", item_id=item, version=version, title=f"{item} v{version}")
    return Consumed(event, "item-updates", partition, offset, 0)


def rm(item: str, version: int, *, partition: int = 0, offset: int = 0) -> Consumed:
    return Consumed(DeleteEvent(type="delete", item_id=item, version=version), "item-updates", partition, offset, 0)


def test_highest_version_per_item_wins_whatever_the_arrival_order() -> None:
    batcher = Batcher(max_events=100, max_wait_s=1.0)
    for rec in [up("a", 1, offset=0), up("b", 5, offset=1), up("a", 3, offset=2), up("a", 2, offset=3),
                rm("b", 6, offset=4), up("c", 1, partition=1, offset=0)]:
        batcher.add(rec)
    batch = batcher.drain()
    winners = {rec.event.item_id: (type(rec.event).__name__, rec.event.version) for rec in batch.events}
    assert winners == {"a": ("UpsertEvent", 3), "b": ("DeleteEvent", 6), "c": ("UpsertEvent", 1)}
    assert batch.consumed == 6 and batch.superseded == 3
    assert batch.next_offsets == {("item-updates", 0): 5, ("item-updates", 1): 1}
    assert batcher.pending == 0 and batcher.drain().events == []


def test_equal_versions_keep_the_later_record() -> None:
    batcher = Batcher(max_events=10, max_wait_s=1.0)
    batcher.add(up("a", 2, offset=0))
    batcher.add(rm("a", 2, offset=1))
    assert isinstance(batcher.drain().events[0].event, DeleteEvent)


def test_skipped_records_still_advance_the_commit_offset() -> None:
    batcher = Batcher(max_events=10, max_wait_s=1.0)
    batcher.add(up("a", 1, offset=10))
    batcher.skip(topic="item-updates", partition=0, offset=11)
    batch = batcher.drain()
    assert batch.next_offsets == {("item-updates", 0): 12} and len(batch) == 1 and batch.consumed == 2


def test_batch_is_due_when_full() -> None:
    batcher = Batcher(max_events=3, max_wait_s=60.0)
    batcher.add(up("a", 1))
    batcher.add(up("b", 1))
    assert not batcher.due()
    batcher.skip(topic="item-updates", partition=0, offset=2)
    assert batcher.due()


def test_batch_is_due_when_its_oldest_record_waited_long_enough() -> None:
    clock = Clock()
    batcher = Batcher(max_events=100, max_wait_s=0.5, clock=clock)
    assert not batcher.due() and batcher.seconds_until_due() == 0.5
    batcher.add(up("a", 1))
    clock.now += 0.3
    batcher.add(up("b", 1))
    assert not batcher.due() and abs(batcher.seconds_until_due() - 0.2) < 1e-9
    clock.now += 0.2
    assert batcher.due()
    batcher.drain()
    assert not batcher.due() and batcher.seconds_until_due() == 0.5
