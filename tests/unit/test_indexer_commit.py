"""A commit the broker cannot take does not stop the indexer: the offsets go with the next commit; a dead-letter
flush it cannot take is retried in place, like the apply, before any offset commits.

The apply has already made the batch durable when the commit runs, so a lost commit only means
re-delivery (which the versioned apply drops). The broker-cut outage test shows it end to end
against Tansu; this pins the bookkeeping with a stand-in consumer.
"""

from __future__ import annotations

import pytest
from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaConnectionError, KafkaTimeoutError

from indexer.worker import IndexerWorker
from service.settings import Settings


class FlakyConsumer:
    """Owns ``owned``; each commit raises the next error in ``failures`` (None = accepted)."""

    def __init__(self, owned: set[tuple[str, int]], failures: list) -> None:
        self.owned = owned
        self.failures = failures
        self.committed: list[dict[tuple[str, int], int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(topic, partition) for topic, partition in self.owned}

    def commit(self, offsets) -> None:
        error = self.failures.pop(0) if self.failures else None
        if error is not None:
            raise error
        self.committed.append({(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()})


def worker_with(consumer: FlakyConsumer, durable_batches: list[dict[tuple[str, int], int]]) -> IndexerWorker:
    worker = IndexerWorker(settings=Settings(_env_file=None), consumer=consumer, store=None, encoder=None,
                           sink=None, dead_letters=None)
    worker.make_durable = lambda: durable_batches.pop(0)  # the apply itself is tested elsewhere
    return worker


def test_offsets_of_a_failed_commit_go_with_the_next_one() -> None:
    consumer = FlakyConsumer({("items", 0), ("items", 1)}, [KafkaConnectionError("broker cut"), None])
    worker = worker_with(consumer, [{("items", 0): 10, ("items", 1): 7}, {("items", 0): 15}])

    worker.flush()  # the broker is away: nothing committed, and the worker carries on
    assert consumer.committed == [] and worker.failed_commits == 1

    worker.flush()
    assert consumer.committed == [{("items", 0): 15, ("items", 1): 7}]

    worker.make_durable = lambda: {}
    worker.flush()  # nothing left over: no commit at all
    assert len(consumer.committed) == 1


def test_left_over_offsets_of_partitions_no_longer_owned_are_dropped() -> None:
    consumer = FlakyConsumer({("items", 0), ("items", 1)}, [KafkaConnectionError("broker cut"), None])
    worker = worker_with(consumer, [{("items", 0): 10, ("items", 1): 7}, {("items", 0): 12}])

    worker.flush()
    consumer.owned = {("items", 0)}  # a rebalance gave partition 1 to another member
    worker.flush()
    assert consumer.committed == [{("items", 0): 12}]


def test_a_commit_refused_after_a_rebalance_is_not_retried() -> None:
    consumer = FlakyConsumer({("items", 0)}, [CommitFailedError("generation moved on"), None])
    worker = worker_with(consumer, [{("items", 0): 10}, {("items", 0): 11}])

    worker.flush()
    worker.flush()
    assert consumer.committed == [{("items", 0): 11}] and worker.failed_commits == 0


class FlakyDeadLetters:
    """Each flush raises the next error in ``failures`` (none left: acknowledged)."""

    def __init__(self, failures: list) -> None:
        self.failures = failures
        self.flushes = 0

    def flush(self, *, timeout_s: float) -> None:
        self.flushes += 1
        if self.failures:
            raise self.failures.pop(0)


def dead_lettering_worker(letters: FlakyDeadLetters, *, attempts: int = 6) -> IndexerWorker:
    worker = IndexerWorker(settings=Settings(_env_file=None), consumer=None, store=None, encoder=None, sink=None,
                           dead_letters=letters, max_apply_attempts=attempts)
    worker.batcher.skip(topic="items", partition=0, offset=41)  # a dead-lettered record: nothing to apply
    return worker


def test_a_dead_letter_flush_the_broker_refuses_is_retried_in_place_before_its_offsets_commit() -> None:
    letters = FlakyDeadLetters([KafkaTimeoutError("broker cut"), KafkaConnectionError("broker cut")])
    assert dead_lettering_worker(letters).make_durable() == {("items", 0): 42}
    assert letters.flushes == 3


def test_a_broker_away_longer_than_the_retries_ends_the_worker_with_nothing_committed() -> None:
    letters = FlakyDeadLetters([KafkaTimeoutError("broker cut")] * 2)
    with pytest.raises(KafkaTimeoutError):
        dead_lettering_worker(letters, attempts=2).make_durable()  # a supervisor restarts it; re-delivery
    assert letters.flushes == 2
