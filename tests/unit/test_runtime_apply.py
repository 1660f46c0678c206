"""``Runtime.apply_items`` semantics with a stand-in encoder (the real models run in tests/integration).

The fake encoder hashes text to a unit vector: enough to check which writes reach the index and
the store, in which order, and that stale writes are never encoded.
"""

from __future__ import annotations

import hashlib

import numpy as np

from service.catalogue import stable_id
from service.index.exact import ExactIndex
from service.runtime import Runtime
from service.settings import Settings
from service.store.base import ItemDocument
from service.store.memory import MemoryStore

DIM = 8


class HashEncoder:
    dim = DIM
    model_version = "encoder:test"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts, *, kind: str = "item") -> np.ndarray:
        self.seen.extend(texts)
        seeds = [int(hashlib.md5(t.encode()).hexdigest()[:8], 16) for t in texts]
        v = np.array([np.random.default_rng(s).standard_normal(DIM) for s in seeds], dtype=np.float32).reshape(-1, DIM)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def runtime() -> Runtime:
    return Runtime(settings=Settings(), backend=None, encoder=HashEncoder(), scorer=None, items=ExactIndex(DIM),
                   keyphrases=ExactIndex(DIM), keyphrase_texts={}, store=MemoryStore())


def doc(item_id: str, version: int, title: str) -> ItemDocument:
    return ItemDocument(item_id=item_id, version=version, title=title)


def nearest(rt: Runtime, title: str) -> str | None:
    _, ids = rt.items.search(rt.encoder.encode([title]), 1)
    return rt.store.item_ids_for_vectors([int(ids[0][0])])[0]


def test_upserts_are_versioned_and_stale_ones_are_not_encoded() -> None:
    rt = runtime()
    assert rt.apply_items(upserts=[doc("a", 2, "red chair"), doc("b", 1, "blue lamp")]).upserted == ["a", "b"]
    rt.encoder.seen.clear()
    result = rt.apply_items(upserts=[doc("a", 1, "stale chair"), doc("a", 3, "green chair")])
    assert result.upserted == ["a"] and result.stale == 1 and rt.encoder.seen == ["green chair"]
    assert len(rt.items) == 2 and nearest(rt, "green chair") == "a"
    assert rt.store.get_items(["a"])[0].title == "green chair"


def test_later_version_in_one_batch_wins_in_store_and_index() -> None:
    rt = runtime()
    rt.apply_items(upserts=[doc("a", 1, "first title"), doc("a", 2, "second title")])
    assert rt.store.get_items(["a"])[0].version == 2 and len(rt.items) == 1
    _, ids = rt.items.search(rt.encoder.encode(["second title"]), 1)
    scores, _ = rt.items.search(rt.encoder.encode(["second title"]), 1)
    assert ids[0][0] == stable_id("a") and scores[0][0] > 0.999


def test_deletes_remove_vectors_and_leave_tombstones() -> None:
    rt = runtime()
    rt.apply_items(upserts=[doc("a", 1, "red chair"), doc("b", 1, "blue lamp")])
    result = rt.apply_items(upserts=[doc("a", 2, "red chair v2")], deletes=[("a", 3), ("b", 1), ("never", 1)])
    # per item, its newest change in the call is what the result reports: "a" ends deleted at 3
    assert result.upserted == [] and result.deleted == ["a", "never"] and result.stale == 1
    assert len(rt.items) == 1 and nearest(rt, "blue lamp") == "b"
    assert rt.apply_items(upserts=[doc("a", 3, "back again")]).upserted == []
