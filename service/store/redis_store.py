"""Redis behind the store seam: item documents, per-item versions with tombstones, the
vector-id → item-id map and the keyphrase recommendation cache.

Keys (all under ``settings.redis_prefix``):

- ``ver``      hash  item_id → latest version seen (kept after a delete: the tombstone)
- ``doc:<id>`` string item document JSON (absent when deleted)
- ``vid``      hash  stable_id(item_id) → item_id (the index's int64 ids back to item ids)
- ``recs:<id>`` string CachedRecommendations JSON; expires ``keyphrase_cache_ttl_s`` after the last request
- ``recver``   hash  item_id → the item version the cached recommendations were computed for
- ``live``     string number of live documents

Writes are compare-and-set on the version and run as Lua scripts, so each item's check and
update are one atomic step even with several indexer workers and replicas writing at once
(Redis runs a script without interleaving). Scripts take no ``KEYS``: fine for one Redis or a
replicated primary; Redis Cluster would need a hash tag per item (see docs/indexing.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import redis

from service.catalogue import stable_id
from service.errors import DependencyUnavailable
from service.settings import RedisSettings
from service.store.base import CachedRecommendations, ItemDocument

# ARGV: prefix, then (item_id, version, doc_json, vector_id) per item. Returns 1/0 per item.
_PUT_ITEMS = """
local prefix = ARGV[1]
local applied = {}
for i = 2, #ARGV, 4 do
  local item, version, doc, vid = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local current = redis.call('HGET', prefix .. 'ver', item)
  if (not current) or tonumber(current) < version then
    redis.call('HSET', prefix .. 'ver', item, version)
    if redis.call('EXISTS', prefix .. 'doc:' .. item) == 0 then redis.call('INCR', prefix .. 'live') end
    redis.call('SET', prefix .. 'doc:' .. item, doc)
    redis.call('HSET', prefix .. 'vid', vid, item)
    applied[#applied + 1] = 1
  else
    applied[#applied + 1] = 0
  end
end
return applied
"""

# ARGV: prefix, then (item_id, version) per item. The version stays as a tombstone.
_DELETE_ITEMS = """
local prefix = ARGV[1]
local applied = {}
for i = 2, #ARGV, 2 do
  local item, version = ARGV[i], tonumber(ARGV[i + 1])
  local current = redis.call('HGET', prefix .. 'ver', item)
  if (not current) or tonumber(current) < version then
    redis.call('HSET', prefix .. 'ver', item, version)
    if redis.call('DEL', prefix .. 'doc:' .. item) == 1 then redis.call('DECR', prefix .. 'live') end
    redis.call('DEL', prefix .. 'recs:' .. item)
    applied[#applied + 1] = 1
  else
    applied[#applied + 1] = 0
  end
end
return applied
"""

# ARGV: prefix, TTL seconds (0 = none), then (item_id, item_version, recs_json) per item. Stores
# recommendations unless the item is already known at a newer version (they would describe an outdated
# document) or the cache holds recommendations for a newer version. A refresh keeps the entry's remaining
# life (its clock runs from the last request, not the last write); a new entry gets the full TTL.
_PUT_RECS = """
local prefix, ttl = ARGV[1], tonumber(ARGV[2])
for i = 3, #ARGV, 3 do
  local item, version, recs = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local current = tonumber(redis.call('HGET', prefix .. 'ver', item) or '-1')
  local cached = tonumber(redis.call('HGET', prefix .. 'recver', item) or '-1')
  if current <= version and cached <= version then
    local key = prefix .. 'recs:' .. item
    if ttl > 0 and redis.call('TTL', key) < 0 then
      redis.call('SET', key, recs, 'EX', ttl)
    else
      redis.call('SET', key, recs, 'KEEPTTL')
    end
    redis.call('HSET', prefix .. 'recver', item, version)
  end
end
return 0
"""


def connect(settings: RedisSettings, user: str) -> redis.Redis:
    """A client for ``settings.redis_url`` with the configured timeouts (``user`` names the caller in the error)."""
    if not settings.redis_url:
        raise ValueError(f"{user} needs SHOPRANK_REDIS_URL")
    timeout_s = settings.redis_timeout_s
    return redis.Redis.from_url(settings.redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


class RedisStore:
    """The ``ItemStore`` protocol on one Redis database; safe to share across processes."""

    def __init__(self, settings: RedisSettings, *, chunk: int = 500) -> None:
        self._redis = connect(settings, "RedisStore")
        self._prefix = settings.redis_prefix
        self._recs_ttl_s = settings.keyphrase_cache_ttl_s
        self._chunk = chunk
        self._put = self._redis.register_script(_PUT_ITEMS)
        self._delete = self._redis.register_script(_DELETE_ITEMS)
        self._put_recs = self._redis.register_script(_PUT_RECS)

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise DependencyUnavailable(f"redis: {exc}", retry_after_s=1) from exc

    def _chunks(self, rows: list) -> Iterable[list]:
        for start in range(0, len(rows), self._chunk):
            yield rows[start:start + self._chunk]

    # --- documents and versions
    def get_items(self, item_ids: list[str]) -> list[ItemDocument | None]:
        if not item_ids:
            return []
        raw = self._call(self._redis.mget, [self._key(f"doc:{i}") for i in item_ids])
        return [None if value is None else ItemDocument.model_validate_json(value) for value in raw]

    def item_version(self, item_id: str) -> int | None:
        return self.item_versions([item_id])[0]

    def item_versions(self, item_ids: list[str]) -> list[int | None]:
        """Latest versions (tombstones included) for many items in one round trip."""
        if not item_ids:
            return []
        raw = self._call(self._redis.hmget, self._key("ver"), item_ids)
        return [None if value is None else int(value) for value in raw]

    def put_items(self, docs: list[ItemDocument]) -> list[bool]:
        applied: list[bool] = []
        for part in self._chunks(docs):
            args: list = [self._prefix]
            for doc in part:
                args += [doc.item_id, doc.version, doc.model_dump_json(), stable_id(doc.item_id)]
            applied += [bool(flag) for flag in self._call(self._put, args=args)]
        return applied

    def delete_items(self, item_ids: list[str], versions: list[int]) -> list[bool]:
        if len(item_ids) != len(versions):
            raise ValueError("item_ids and versions differ in length")
        applied: list[bool] = []
        for part in self._chunks(list(zip(item_ids, versions))):
            args: list = [self._prefix]
            for item_id, version in part:
                args += [item_id, version]
            applied += [bool(flag) for flag in self._call(self._delete, args=args)]
        return applied

    def item_ids_for_vectors(self, vector_ids: list[int]) -> list[str | None]:
        if not vector_ids:
            return []
        raw = self._call(self._redis.hmget, self._key("vid"), [int(v) for v in vector_ids])
        return [None if value is None else value.decode("utf-8") for value in raw]

    def count(self) -> int:
        return int(self._call(self._redis.get, self._key("live")) or 0)

    def iter_items(self, *, batch: int = 1000) -> Iterator[list[ItemDocument]]:
        """Every live document, ``batch`` at a time: HSCAN over the version hash, then MGET (tombstones skipped)."""
        ids: list[str] = []
        try:
            for item_id, _ in self._redis.hscan_iter(self._key("ver"), count=batch):
                ids.append(item_id.decode("utf-8"))
                if len(ids) >= batch:
                    yield [doc for doc in self.get_items(ids) if doc is not None]
                    ids = []
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise DependencyUnavailable(f"redis: {exc}", retry_after_s=1) from exc
        if ids:
            yield [doc for doc in self.get_items(ids) if doc is not None]

    # --- keyphrase recommendation cache
    def put_recommendations(self, recs: list[CachedRecommendations]) -> None:
        for part in self._chunks(recs):
            args: list = [self._prefix, self._recs_ttl_s]
            for rec in part:
                args += [rec.item_id, rec.item_version, rec.model_dump_json()]
            self._call(self._put_recs, args=args)

    def get_recommendations(self, item_id: str) -> CachedRecommendations | None:
        key = self._key(f"recs:{item_id}")
        if self._recs_ttl_s > 0:
            raw = self._call(self._redis.getex, key, ex=self._recs_ttl_s)  # GETEX: the read extends the entry's life
        else:
            raw = self._call(self._redis.get, key)
        return None if raw is None else CachedRecommendations.model_validate_json(raw)

    def peek_recommendations(self, item_ids: list[str]) -> list[CachedRecommendations | None]:
        if not item_ids:
            return []
        raw = self._call(self._redis.mget, [self._key(f"recs:{i}") for i in item_ids])
        return [None if r is None else CachedRecommendations.model_validate_json(r) for r in raw]

    def ping(self) -> bool:
        return bool(self._call(self._redis.ping))

    def close(self) -> None:
        self._redis.close()
