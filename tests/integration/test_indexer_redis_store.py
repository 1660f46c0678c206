"""RedisStore against a real redis-server: versions, tombstones, CAS under concurrency, cache guard."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.catalogue import stable_id
from service.settings import Settings
from service.store.base import CachedRecommendations, ItemDocument, KeyphraseRecommendation
from service.store.redis_store import RedisStore

pytestmark = pytest.mark.integration


@pytest.fixture()
def store(redis_url: str) -> RedisStore:
    s = RedisStore(Settings(redis_url=redis_url, redis_prefix=f"t-{uuid.uuid4().hex[:8]}:"))
    yield s
    s.close()


def doc(item_id: str, version: int, title: str = "cordless drill") -> ItemDocument:
    return ItemDocument(item_id=item_id, version=version, title=title, category="tools")


def recs(item_id: str, version: int, phrase: str) -> CachedRecommendations:
    kp = KeyphraseRecommendation(keyphrase=phrase, score=0.5, p_partial_or_better=0.9, p_exact=0.5,
                                 expected=1.4, label="exact")
    return CachedRecommendations(item_id=item_id, item_version=version, model_version="ranker:1", keyphrases=[kp])


def test_newer_versions_apply_and_older_or_equal_are_refused(store: RedisStore) -> None:
    assert store.put_items([doc("a", 2, "v2"), doc("b", 1)]) == [True, True]
    assert store.put_items([doc("a", 1, "v1"), doc("a", 2, "again"), doc("a", 3, "v3")]) == [False, False, True]
    assert [d.title if d else None for d in store.get_items(["a", "b", "zz"])] == ["v3", "cordless drill", None]
    assert store.item_versions(["a", "b", "zz"]) == [3, 1, None]
    assert store.count() == 2
    assert store.item_ids_for_vectors([stable_id("a"), stable_id("b"), 12345]) == ["a", "b", None]


def test_delete_keeps_a_tombstone_that_refuses_older_upserts(store: RedisStore) -> None:
    store.put_items([doc("a", 1)])
    assert store.delete_items(["a", "a"], [1, 5]) == [False, True]
    assert store.get_items(["a"]) == [None]
    assert store.item_version("a") == 5
    assert store.count() == 0
    assert store.put_items([doc("a", 4)]) == [False]
    assert store.put_items([doc("a", 6, "back")]) == [True]
    assert store.get_items(["a"])[0].title == "back"
    assert store.count() == 1


def test_concurrent_writers_leave_the_highest_version(store: RedisStore) -> None:
    versions = list(range(1, 201))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda v: store.put_items([doc("hot", v, f"t{v}")])[0], reversed(versions)))
    assert store.get_items(["hot"])[0].title == "t200"
    assert store.item_version("hot") == 200
    assert results[0] is True  # the highest version is applied whatever order the writers ran in
    assert sum(results) >= 1 and store.count() == 1


def test_recommendations_are_not_overwritten_by_an_older_item_version(store: RedisStore) -> None:
    store.put_items([doc("a", 3)])
    store.put_recommendations([recs("a", 3, "new phrase")])
    store.put_recommendations([recs("a", 2, "old phrase")])
    assert store.get_recommendations("a").keyphrases[0].keyphrase == "new phrase"
    store.delete_items(["a"], [4])
    assert store.get_recommendations("a") is None
    assert store.get_recommendations("never") is None


def test_cached_keyphrases_live_from_their_last_request(redis_url: str) -> None:
    """A request (GETEX) extends an entry's life; a refresh by the worker keeps the remaining life; the worker's
    look (MGET) extends nothing; an entry nobody asks for expires."""
    store = RedisStore(Settings(redis_url=redis_url, redis_prefix=f"t-{uuid.uuid4().hex[:8]}:",
                                keyphrase_cache_ttl_s=100))
    try:
        raw = store._redis
        key = f"{store._prefix}recs:a"
        store.put_items([doc("a", 1)])
        store.put_recommendations([recs("a", 1, "first")])
        assert 95 < raw.ttl(key) <= 100  # a new entry: the full TTL
        raw.expire(key, 10)
        assert store.peek_recommendations(["a", "never"])[0].keyphrases[0].keyphrase == "first"
        assert store.peek_recommendations(["never"]) == [None]
        assert raw.ttl(key) <= 10  # the worker's look does not count as a request
        store.put_recommendations([recs("a", 2, "refreshed")])
        assert raw.ttl(key) <= 10  # a refresh keeps the remaining life
        assert store.get_recommendations("a").keyphrases[0].keyphrase == "refreshed"
        assert raw.ttl(key) > 95  # a request extends it
        raw.pexpire(key, 50)
        time.sleep(0.2)
        assert store.get_recommendations("a") is None and store.peek_recommendations(["a"]) == [None]
    finally:
        store.close()
