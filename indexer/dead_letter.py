"""Dead-letter queue: records that cannot be applied go to ``item-updates.dlq`` untouched.

The value is the original bytes and the key the original key, so a fixed record can be
replayed as-is; headers say why (``reason``: a short code, ``detail``: the message) and
where it came from (``source_topic``, ``source_partition``, ``source_offset``). Sends are
asynchronous; ``flush`` is called before the batch that covers them commits its offsets,
so a dead-lettered record is never lost between the two topics.
"""

from __future__ import annotations

from kafka import KafkaProducer


class DeadLetters:
    """Publishes rejected records with their reason; one instance per worker."""

    def __init__(self, producer: KafkaProducer, *, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._pending: list = []
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
        self._pending.append(self._producer.send(self._topic, key=key, value=value or b"", headers=headers))
        self.sent += 1

    def flush(self, *, timeout_s: float) -> None:
        """Block until every dead letter is acknowledged (acks=all) or raise the send error."""
        if not self._pending:
            return
        self._producer.flush(timeout=timeout_s)
        pending, self._pending = self._pending, []
        for future in pending:
            future.get(timeout=timeout_s)
