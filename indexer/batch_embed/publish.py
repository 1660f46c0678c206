"""The batch output onto the vector log, so that every service replica takes it (``service/stream/follower.py``).

Each row becomes an upsert record (``service.stream.vector_log``: vector as float32, the document, the row's version, the
encoder header = the row's model version), sent by the Spark tasks themselves (one acks=all producer per task)
so publishing scales with the executors. With ``previous`` only rows that differ from it (item, version, text
hash or model) are sent: after a diff run, what was embedded. A replica applies a record whose version is newer
than the one it holds: the seed catalogue is at version 0, so unversioned rows a diff run changed (version ≥ 1)
are taken, while a full run at version 0 changes nothing in a replica seeded from the same catalogue.

Documents go to the replicas' own stores; a shared Redis store is written by the indexer, not here (docs).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from service.settings import Settings

KAFKA_FIELDS = ("kafka_bootstrap", "kafka_vectors_topic", "kafka_request_timeout_ms", "kafka_partitions",
                "kafka_topic", "kafka_dlq_topic")


def _publish_partition(rows, *, config: dict, event_ms: int, batch: int, sent) -> None:
    from indexer.consumer import make_producer
    from service.catalogue_vectors import unpack_vectors
    from service.store.base import ItemDocument
    from service.stream.vector_log import VectorLogPublisher, VectorRecord

    settings = Settings(**config)
    producer = make_producer(settings, client_id="batch-embed-publish")
    publisher = VectorLogPublisher(producer, topic=settings.kafka_vectors_topic,
                                   timeout_s=settings.kafka_request_timeout_ms / 1000)
    try:
        buffer: list = []
        for row in [*rows, None]:
            if row is not None:
                buffer.append(row)
            if buffer and (row is None or len(buffer) >= batch):
                vectors = unpack_vectors([bytes(r.vector) for r in buffer])
                by_model: dict[str, list] = {}
                for r, vector in zip(buffer, vectors):
                    doc = ItemDocument(item_id=r.item_id, version=r.version, title=r.title, category=r.category or "")
                    by_model.setdefault(r.model_version, []).append(
                        VectorRecord(r.item_id, r.version, event_ms, vector, doc))
                for model_version, records in by_model.items():
                    publisher.publish(records, encoder_version=model_version)
                sent.add(len(buffer))
                buffer = []
    finally:
        producer.close()


def publish(spark, settings: Settings, vectors: Path, *, previous: Path | None = None, batch: int = 1000) -> int:
    """Send the rows of ``vectors`` (those not in ``previous`` as they are) to the vector log; returns how many."""
    from service.stream.topics import ensure_topics

    if not settings.kafka_bootstrap:
        raise ValueError("publishing needs SHOPRANK_KAFKA_BOOTSTRAP")
    ensure_topics(settings)
    rows = spark.read.parquet(str(vectors))
    if previous is not None:
        keys = ["item_id", "version", "text_hash", "model_version"]
        rows = rows.join(spark.read.parquet(str(previous)).select(*keys), keys, "left_anti")
    sent = spark.sparkContext.accumulator(0)
    config = {name: getattr(settings, name) for name in KAFKA_FIELDS}
    rows.foreachPartition(functools.partial(_publish_partition, config=config, event_ms=int(time.time() * 1000),
                                            batch=batch, sent=sent))
    return int(sent.value)
