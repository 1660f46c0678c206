"""Helpers for the near-real-time indexing tests: settings per test, producing, reading topics, waiting."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from service.settings import Settings
from service.stream.events import DeleteEvent, UpsertEvent, encode_event
from service.stream.topics import ensure_topics
from service.stream.vector_log import VectorRecord, decode_record

ROOT = Path(__file__).resolve().parents[2]


def nrt_settings(*, kafka_bootstrap: str, redis_url: str | None, model_repo: Path, state_dir: Path,
                 **overrides) -> Settings:
    """Fresh topics, group and Redis prefix per call, so tests never see each other's data."""
    tag = uuid.uuid4().hex[:8]
    base = dict(
        model_repo=model_repo, data_dir=ROOT / "data", state_dir=state_dir, inference="embedded",
        catalogue_limit=500, kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, redis_prefix=f"t{tag}:",
        kafka_topic=f"items-{tag}", kafka_dlq_topic=f"items-{tag}.dlq", kafka_vectors_topic=f"vectors-{tag}",
        kafka_group=f"indexer-{tag}", kafka_partitions=2, indexer_batch_max_wait_s=0.05,
        kafka_session_timeout_ms=6000, kafka_heartbeat_interval_ms=2000, api_key=None,
    )
    settings = Settings(**(base | overrides))
    ensure_topics(settings)
    return settings


def upsert(item_id: str, version: int, title: str, **fields) -> UpsertEvent:
    return UpsertEvent(type="upsert", item_id=item_id, version=version, title=title, **fields)


def delete(item_id: str, version: int) -> DeleteEvent:
    return DeleteEvent(type="delete", item_id=item_id, version=version)


def produce(settings: Settings, records: list, *, topic: str | None = None) -> None:
    """Send events (or raw ``(key, value)`` byte pairs) and wait for the acknowledgements."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    try:
        for record in records:
            if isinstance(record, tuple):
                key, value = record
            else:
                key, value = record.item_id.encode(), encode_event(record)
            producer.send(topic or settings.kafka_topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def read_topic(settings: Settings, topic: str, *, idle_s: float = 1.5, timeout_s: float = 30.0) -> list:
    """Every record of ``topic`` from the beginning (stops after ``idle_s`` without new records)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records, last_new, deadline = [], time.monotonic(), time.monotonic() + timeout_s
        while time.monotonic() - last_new < idle_s and time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=200)
            for batch in polled.values():
                records.extend(batch)
                last_new = time.monotonic()
        return records
    finally:
        consumer.close()


def vector_log(settings: Settings) -> list[VectorRecord]:
    return [decode_record(r.key, r.value) for r in read_topic(settings, settings.kafka_vectors_topic)]


def committed(settings: Settings) -> dict[int, int]:
    """The indexer group's committed offsets on the item topic, by partition."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        offsets = admin.list_group_offsets(settings.kafka_group).get(settings.kafka_group, {})
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == settings.kafka_topic}
    finally:
        admin.close()


def wait_until(condition: Callable[[], object], *, timeout_s: float = 30.0, every_s: float = 0.1,
               what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@contextlib.contextmanager
def running_indexer(settings: Settings, *, client_id: str = "test-indexer") -> Iterator:
    """An indexer worker on a thread of this process; stopped cleanly (flush + commit) on exit."""
    from indexer.worker import build_worker

    worker = build_worker(settings, client_id=client_id)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(stop=stop)
        except BaseException as exc:  # logged here, re-raised to the test on exit
            logging.getLogger(__name__).exception("indexer worker %s stopped on an error", client_id)
            errors.append(exc)

    thread = threading.Thread(target=run, name=client_id, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(30)
    if errors:
        raise errors[0]


def expected_final(events: list) -> dict[str, tuple[int, str | None]]:
    """Item → (highest version, title or None when that version is a delete): the state each event
    applied once, in any order, must leave."""
    final: dict[str, tuple[int, str | None]] = {}
    for event in events:
        held = final.get(event.item_id)
        if held is None or event.version > held[0]:
            final[event.item_id] = (event.version, getattr(event, "title", None))
    return final
