"""The dead letters' bookkeeping across a failed flush, with a stand-in producer: a letter the broker refused is
sent again by the next flush, one still in flight is not (no duplicate), one acknowledged is done. The broker-cut
test in ``tests/integration/test_outages.py`` shows it against Tansu."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaConnectionError, KafkaError

from indexer.dead_letter import DeadLetters


class Send:
    """A send future as ``DeadLetters`` reads it."""

    def __init__(self) -> None:
        self.is_done, self.exception = False, None

    def failed(self) -> bool:
        return self.exception is not None


class StandInProducer:
    """Records each send; ``outcomes`` says, per send in order, what the broker does by the next flush."""

    def __init__(self, outcomes: list[str]) -> None:
        self.outcomes = outcomes
        self.sends: list[tuple[bytes, Send]] = []

    def send(self, topic: str, *, key: bytes, value: bytes, headers: list) -> Send:
        self.sends.append((key, Send()))
        return self.sends[-1][1]

    def flush(self, timeout: float) -> None:
        for _key, future in self.sends:
            if future.is_done or future.exception is not None:
                continue
            outcome = self.outcomes.pop(0) if self.outcomes else "ack"
            if outcome == "ack":
                future.is_done = True
            elif outcome == "refuse":
                future.is_done, future.exception = True, KafkaConnectionError("broker cut")
            # "in flight": left as it is


def send(letters: DeadLetters, key: bytes) -> None:
    letters.send(key=key, value=b"\xff", reason="undecodable", detail="not JSON", source_topic="items",
                 source_partition=0, source_offset=1)


def test_a_refused_letter_is_sent_again_and_one_in_flight_is_not() -> None:
    producer = StandInProducer(["ack", "refuse", "in flight"])
    letters = DeadLetters(producer, topic="items.dlq")
    for key in (b"a", b"b", b"c"):
        send(letters, key)

    with pytest.raises(KafkaError):
        letters.flush(timeout_s=1)
    assert letters.pending == 2  # b refused, c in flight; a acknowledged

    letters.flush(timeout_s=1)  # b sent again; c's own send acknowledged (the broker is back)
    assert letters.pending == 0
    assert [key for key, _ in producer.sends] == [b"a", b"b", b"c", b"b"]

    letters.flush(timeout_s=1)  # nothing pending: nothing sent
    assert len(producer.sends) == 4
