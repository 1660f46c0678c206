"""The stream half of ShopRank: what exists only when Kafka is configured (kafka-python is imported here only)."""
