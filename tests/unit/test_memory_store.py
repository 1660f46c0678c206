"""The in-process item store: versions (tombstones included), stale writes refused, id mapping, cache."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from service.catalogue import stable_id, text_hash
from service.store.base import CachedRecommendations, ItemDocument
from service.store.memory import MemoryStore


def doc(item_id: str, version: int, title: str = "t") -> ItemDocument:
    return ItemDocument(item_id=item_id, version=version, title=title)


def test_newer_versions_apply_and_stale_ones_are_refused() -> None:
    store = MemoryStore()
    assert store.put_items([doc("a", 1, "one"), doc("b", 0)]) == [True, True]
    assert store.put_items([doc("a", 1, "same"), doc("a", 0, "older"), doc("a", 2, "two")]) == [False, False, True]
    assert store.get_items(["a", "b", "zzz"])[0].title == "two" and store.get_items(["zzz"]) == [None]
    assert store.item_version("a") == 2 and store.count() == 2


def test_tombstones_keep_their_version_and_block_late_upserts() -> None:
    store = MemoryStore()
    store.put_items([doc("a", 3)])
    assert store.delete_items(["a", "a", "never-seen"], [3, 5, 1]) == [False, True, True]
    assert store.get_items(["a"]) == [None] and store.item_version("a") == 5 and store.count() == 0
    assert store.put_items([doc("a", 4), doc("never-seen", 1)]) == [False, False]
    assert store.put_items([doc("a", 6)]) == [True]


def test_vector_ids_resolve_to_item_ids() -> None:
    store = MemoryStore()
    store.put_items([doc("100001", 0), doc("x", 0)])
    assert store.item_ids_for_vectors([stable_id("x"), stable_id("100001"), 42]) == ["x", "100001", None]


def test_recommendations_cache_is_dropped_with_the_item() -> None:
    store = MemoryStore()
    store.put_items([doc("a", 1)])
    rec = CachedRecommendations(item_id="a", item_version=1, model_version="m", keyphrases=[])
    store.put_recommendations([rec])
    assert store.get_recommendations("a") == rec
    store.delete_items(["a"], [2])
    assert store.get_recommendations("a") is None


def test_concurrent_writers_leave_the_highest_version() -> None:
    store = MemoryStore()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda v: store.put_items([doc("a", v, str(v))]), range(500)))
    assert store.item_version("a") == 499 and store.get_items(["a"])[0].title == "499"


def test_cached_keyphrases_describe_a_document_while_its_text_and_the_models_stay() -> None:
    doc = ItemDocument(item_id="a", version=3, title="Cordless Drill", category="tools", price=10.0)
    rec = CachedRecommendations(item_id="a", item_version=1, model_version="m", keyphrases=[],
                                text_hash=text_hash(doc.text))
    assert rec.describes(doc, "m")  # an older version with the same text
    assert not rec.describes(doc, "m2")  # other models
    assert not rec.describes(doc.model_copy(update={"title": "Corded Drill"}), "m")
    assert not rec.describes(doc.model_copy(update={"category": "garden"}), "m")
    legacy = rec.model_copy(update={"text_hash": None})  # written before the hash existed: versions only
    assert not legacy.describes(doc, "m") and legacy.describes(doc.model_copy(update={"version": 1}), "m")


def test_cached_keyphrases_expire_unless_asked_for(monkeypatch) -> None:
    """As the Redis store: a request extends an entry's life, a peek or a refresh does not."""
    clock = [1000.0]
    monkeypatch.setattr("service.store.memory.time.monotonic", lambda: clock[0])
    store = MemoryStore(recommendations_ttl_s=60)
    store.put_items([doc("a", 1), doc("b", 1)])
    rec = CachedRecommendations(item_id="a", item_version=1, model_version="m", keyphrases=[])
    store.put_recommendations([rec, rec.model_copy(update={"item_id": "b"})])
    clock[0] += 50
    assert store.get_recommendations("a") == rec  # asked: lives until 1110
    assert store.peek_recommendations(["a", "b"]) == [rec, rec.model_copy(update={"item_id": "b"})]
    store.put_recommendations([rec.model_copy(update={"item_id": "b", "item_version": 2})])  # refresh: still 1060
    clock[0] += 20
    assert store.peek_recommendations(["a", "b"]) == [rec, None]
    clock[0] += 50
    assert store.get_recommendations("a") is None
