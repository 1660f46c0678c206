"""Create the Kafka topics ShopRank uses (idempotent), with the partition count from settings.

``item-updates`` and its DLQ are ordinary (delete-retention) topics; ``item-vectors`` is
compacted, so it holds each item's latest vector forever and a new replica can rebuild from
it (docs/indexing.md). All three have the same partition count, so item → partition is the
same mapping on both sides (the default partitioner hashes the key).
"""

from __future__ import annotations

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from service.settings import KafkaSettings


def ensure_topics(settings: KafkaSettings, *, timeout_s: float = 10.0) -> list[str]:
    """Create any missing topic; returns the names created now."""
    if not settings.kafka_bootstrap:
        raise ValueError("SHOPRANK_KAFKA_BOOTSTRAP is not set")
    wanted = {
        settings.kafka_topic: {},
        settings.kafka_dlq_topic: {},
        settings.kafka_vectors_topic: {"cleanup.policy": "compact"},
    }
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                             request_timeout_ms=int(timeout_s * 1000), client_id="shoprank-admin")
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name, settings.kafka_partitions, 1, topic_configs=configs)
                   for name, configs in wanted.items() if name not in existing]
        created: list[str] = []
        for topic in missing:  # one by one: a concurrent creator makes only its own topic fail
            try:
                admin.create_topics([topic], timeout_ms=int(timeout_s * 1000), wait_for_metadata=True)
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
