"""The stream half of ShopRank: what exists only when Kafka is configured.

- ``events``: the item-event contract on ``item-updates`` (and its dead-letter reasons);
- ``writer``: the API's Kafka item writer (``PUT``/``DELETE`` publish, the indexer applies);
- ``vector_log``: the compacted vector-log record format the indexer publishes and replicas follow;
- ``follower``: the replica follower, its snapshot format and its metrics;
- ``topics``: topic administration (created once, compacted where the log is a table).

kafka-python is imported by ``writer``, ``follower`` and ``topics`` only, and ``service.replication``
imports them lazily, so an embedded deployment never loads it (``tests/unit/test_import_boundaries.py``).
"""
