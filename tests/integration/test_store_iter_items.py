"""``ItemStore.iter_items`` (what an encoder swap re-embeds): live documents only, in batches, both stores."""

from __future__ import annotations

import uuid

import pytest

from service.settings import Settings
from service.store.base import ItemDocument
from service.store.memory import MemoryStore
from service.store.redis_store import RedisStore

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield MemoryStore()
        return
    redis_url = request.getfixturevalue("redis_url")
    store = RedisStore(Settings(redis_url=redis_url, redis_prefix=f"iter-{uuid.uuid4().hex}:"))
    yield store
    store.close()


def test_iter_items_yields_every_live_document_once_in_batches(store) -> None:
    store.put_items([ItemDocument(item_id=f"i{n}", title=f"title {n}", version=1) for n in range(23)])
    store.put_items([ItemDocument(item_id="i5", title="renamed", version=2)])
    store.delete_items(["i7", "i8"], [2, 2])
    batches = list(store.iter_items(batch=5))
    docs = {doc.item_id: doc for batch in batches for doc in batch}
    assert sum(len(batch) for batch in batches) == len(docs) == 21 == store.count()
    assert "i7" not in docs and "i8" not in docs
    assert (docs["i5"].title, docs["i5"].version) == ("renamed", 2)
    assert all(len(batch) <= 5 for batch in batches)
