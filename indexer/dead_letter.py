"""Dead-letter queue: records that cannot be applied go to ``item-updates.dlq`` untouched.

The value is the original bytes and the key the original key, so a fixed record can be
replayed as-is; headers say why (``reason``: a short code, ``detail``: the message) and
where it came from (``source_topic``, ``source_partition``, ``source_offset``). Sends are
asynchronous; ``flush`` is called before the batch that covers them commits its offsets,
so a dead-lettered record is never lost between the two topics. A letter the broker has not
acknowledged stays pending: the next ``flush`` waits again for one still in flight and sends
again one whose send failed, so the worker retries the flush in place through a broker outage
instead of exiting (a failed send the broker did write reaches the topic twice; its
``source_*`` headers identify it).
"""

from __future__ import annotations

from contextlib import suppress

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError


class DeadLetters:
    """Publishes rejected records with their reason; one instance per worker."""

    def __init__(self, producer: KafkaProducer, *, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._pending: list[tuple[dict, object | None]] = []  # (letter, its send future; None: to send again)
        self.sent = 0

    def send(self, *, key: bytes | None, value: bytes | None, reason: str, detail: str,
             source_topic: str, source_partition: int, source_offset: int) -> None:
        headers = [
            ("reason", reason.encode("utf-8")),
            ("detail", detail.encode("utf-8")[:1000]),
            ("source_topic", source_topic.encode("utf-8")),
            ("source_partition", str(source_partition).encode("ascii")),
            ("source_offset", str(source_offset).encode("ascii")),
        ]
        letter = {"key": key, "value": value or b"", "headers": headers}
        self._pending.append((letter, self._send(letter)))
        self.sent += 1

    def _send(self, letter: dict) -> object | None:
        """The letter's send future; None when the producer refused it (the next ``flush`` tries again)."""
        try:
            return self._producer.send(self._topic, **letter)
        except KafkaError:
            return None

    @property
    def pending(self) -> int:
        """Letters not yet acknowledged by the broker."""
        return len(self._pending)

    def flush(self, *, timeout_s: float) -> None:
        """Block until every dead letter is acknowledged (acks=all), or raise the first send error.

        A letter that failed is sent again by the next call; one still in flight stays with its send (the
        producer's own retries), so calling again after an error resumes rather than duplicates."""
        if not self._pending:
            return
        self._pending = [(letter, future if future is not None else self._send(letter)) for letter, future in self._pending]
        with suppress(KafkaTimeoutError):  # what is still in flight is checked below
            self._producer.flush(timeout=timeout_s)
        unacknowledged: list[tuple[dict, object | None]] = []
        error: KafkaError | None = None
        for letter, future in self._pending:
            if future is None:
                unacknowledged.append((letter, None))
                error = error or KafkaTimeoutError("the producer refused a dead letter")
            elif not future.is_done:
                unacknowledged.append((letter, future))
                error = error or KafkaTimeoutError(f"dead letters not acknowledged within {timeout_s} s")
            elif future.failed():
                unacknowledged.append((letter, None))
                error = error or future.exception
        self._pending = unacknowledged
        if error is not None:
            raise error
