"""In-process item store: the embedded default when no Redis is configured.

Keeps documents, the latest version per item (deletes leave a tombstone with their version,
so a late, older upsert cannot resurrect a deleted item), the index-id → item-id map, and the
keyphrase recommendation cache. One lock makes each batch call atomic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from service.catalogue import stable_id
from service.store.base import CachedRecommendations, ItemDocument
from service.versioned_apply import is_newer


class MemoryStore:
    """Thread-safe ``ItemStore`` held in dictionaries; lost when the process exits."""

    def __init__(self, *, recommendations_ttl_s: float = 0) -> None:
        self._lock = threading.RLock()
        self._recs_ttl_s = recommendations_ttl_s  # 0: cached keyphrases never expire
        self._recs_expire_at: dict[str, float] = {}
        self._docs: dict[str, ItemDocument] = {}
        self._versions: dict[str, int] = {}
        self._by_vector: dict[int, str] = {}
        self._recs: dict[str, CachedRecommendations] = {}

    def _is_newer(self, item_id: str, version: int) -> bool:
        return is_newer(version, self._versions.get(item_id))

    def get_items(self, item_ids: list[str]) -> list[ItemDocument | None]:
        with self._lock:
            return [self._docs.get(item_id) for item_id in item_ids]

    def item_version(self, item_id: str) -> int | None:
        with self._lock:
            return self._versions.get(item_id)

    def put_items(self, docs: list[ItemDocument]) -> list[bool]:
        applied = []
        with self._lock:
            for doc in docs:
                ok = self._is_newer(doc.item_id, doc.version)
                if ok:
                    self._docs[doc.item_id] = doc
                    self._versions[doc.item_id] = doc.version
                    self._by_vector[stable_id(doc.item_id)] = doc.item_id
                applied.append(ok)
        return applied

    def delete_items(self, item_ids: list[str], versions: list[int]) -> list[bool]:
        if len(item_ids) != len(versions):
            raise ValueError("item_ids and versions differ in length")
        applied = []
        with self._lock:
            for item_id, version in zip(item_ids, versions):
                ok = self._is_newer(item_id, version)
                if ok:
                    self._docs.pop(item_id, None)
                    self._recs.pop(item_id, None)
                    self._recs_expire_at.pop(item_id, None)
                    self._versions[item_id] = version
                applied.append(ok)
        return applied

    def item_ids_for_vectors(self, vector_ids: list[int]) -> list[str | None]:
        with self._lock:
            return [self._by_vector.get(int(vector_id)) for vector_id in vector_ids]

    def count(self) -> int:
        """Live items (tombstones excluded)."""
        with self._lock:
            return len(self._docs)

    def iter_items(self, *, batch: int = 1000) -> Iterator[list[ItemDocument]]:
        """Every live document, ``batch`` at a time (from a copy taken under the lock)."""
        with self._lock:
            docs = list(self._docs.values())
        for start in range(0, len(docs), batch):
            yield docs[start : start + batch]

    def put_recommendations(self, recs: list[CachedRecommendations]) -> None:
        """As Redis: a refresh keeps the entry's remaining life, a new entry gets the full TTL."""
        with self._lock:
            for rec in recs:
                if self._live_recommendations(rec.item_id) is None and self._recs_ttl_s > 0:
                    self._recs_expire_at[rec.item_id] = time.monotonic() + self._recs_ttl_s
                self._recs[rec.item_id] = rec

    def get_recommendations(self, item_id: str) -> CachedRecommendations | None:
        with self._lock:
            rec = self._live_recommendations(item_id)
            if rec is not None and self._recs_ttl_s > 0:
                self._recs_expire_at[item_id] = time.monotonic() + self._recs_ttl_s
            return rec

    def peek_recommendations(self, item_ids: list[str]) -> list[CachedRecommendations | None]:
        with self._lock:
            return [self._live_recommendations(item_id) for item_id in item_ids]

    def _live_recommendations(self, item_id: str) -> CachedRecommendations | None:
        """The cached entry unless its TTL has passed (then dropped). Call under the lock."""
        if self._recs_ttl_s > 0 and self._recs_expire_at.get(item_id, float("inf")) <= time.monotonic():
            self._recs.pop(item_id, None)
            self._recs_expire_at.pop(item_id, None)
        return self._recs.get(item_id)

    def close(self) -> None:
        """Nothing to release; present for the protocol."""
