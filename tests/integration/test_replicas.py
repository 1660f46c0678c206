"""Service replicas following the vector log, checked through the HTTP API (real Tansu, Redis, ONNX).

Each app is ``create_app`` with Kafka and Redis configured; an indexer worker runs on a thread
of the test process. Searchable means: ``POST /v1/retrieve`` with the item's own title returns it.
"""

from __future__ import annotations

import time

import pytest

from service import pipelines
from service.api.app import create_app
from service.replication import start_replication
from service.runtime import build_runtime
from tests.conftest import serving
from tests.integration.nrt_helpers import delete, nrt_settings, produce, running_indexer, upsert, wait_until

pytestmark = pytest.mark.integration

SHOVEL = "Zebra Striped Titanium Snow Shovel with Ergonomic Handle"
ARMCHAIR = "Purple Velvet Tufted Armchair with Walnut Legs"


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    """Shared by the module's replicas so the seed and keyphrase indexes are built once."""
    return tmp_path_factory.mktemp("replica-state")


@pytest.fixture()
def settings(kafka_bootstrap, redis_url, model_repo, state_dir):
    return nrt_settings(kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, model_repo=model_repo,
                        state_dir=state_dir, replica_id=f"r-{time.time_ns()}")


def retrieve(client, query: str, k: int = 5) -> list[dict]:
    response = client.post("/v1/retrieve", json={"query": query, "k": k, "mode": "dense"})  # the vector index
    assert response.status_code == 200, response.text
    return response.json()["items"]


def top_id(client, query: str) -> str | None:
    items = retrieve(client, query, k=1)
    return items[0]["id"] if items else None


def test_stream_changes_are_searchable_updated_and_deleted(settings) -> None:
    with serving(create_app(settings)) as client, running_indexer(settings):
        started = time.monotonic()
        produce(settings, [upsert("nrt-1", 1, SHOVEL, category="snow removal")])
        wait_until(lambda: top_id(client, SHOVEL) == "nrt-1", what="new item searchable")
        print(f"event → searchable through HTTP in {time.monotonic() - started:.2f}s (incl. polling)")
        hit = retrieve(client, SHOVEL, k=1)[0]
        assert hit["title"] == SHOVEL and hit["category"] == "snow removal"

        produce(settings, [upsert("nrt-1", 2, ARMCHAIR)])
        wait_until(lambda: top_id(client, ARMCHAIR) == "nrt-1", what="update searchable")
        assert top_id(client, SHOVEL) != "nrt-1"  # the old vector is gone, not just shadowed
        assert retrieve(client, ARMCHAIR, k=1)[0]["title"] == ARMCHAIR

        produce(settings, [upsert("nrt-1", 1, SHOVEL), delete("nrt-1", 3)])  # a late old version, then a delete
        wait_until(lambda: "nrt-1" not in [i["id"] for i in retrieve(client, ARMCHAIR, k=20)], what="delete visible")
        assert "nrt-1" not in [i["id"] for i in retrieve(client, SHOVEL, k=20)]
        gone = client.post("/v1/keyphrases/recommend", json={"item_id": "nrt-1", "k": 5})
        assert gone.status_code == 404

        produce(settings, [upsert("nrt-1", 2, SHOVEL)])  # older than the tombstone: stays deleted
        produce(settings, [upsert("nrt-marker", 1, "Marker Item Copper Rain Chain")])
        wait_until(lambda: top_id(client, "Marker Item Copper Rain Chain") == "nrt-marker", what="marker applied")
        assert "nrt-1" not in [i["id"] for i in retrieve(client, SHOVEL, k=20)]


def test_http_writes_are_published_and_come_back_through_the_stream(settings) -> None:
    with serving(create_app(settings)) as client, running_indexer(settings):
        body = {"version": 1, "title": SHOVEL, "category": "snow removal"}
        response = client.put("/v1/items/http-1", json=body)
        assert response.status_code == 202 and response.json()["status"] == "published", response.text
        wait_until(lambda: top_id(client, SHOVEL) == "http-1", what="published write searchable")
        stale = client.put("/v1/items/http-1", json=body)
        assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_version"
        assert client.delete("/v1/items/http-1", params={"version": 2}).status_code == 202
        wait_until(lambda: "http-1" not in [i["id"] for i in retrieve(client, SHOVEL, k=20)], what="delete applied")


def item(client, item_id: str) -> dict:
    response = client.get(f"/v1/items/{item_id}")
    return response.json() if response.status_code == 200 else {"status": response.status_code}


def test_item_reads_report_the_version_this_replica_holds(settings) -> None:
    from indexer import metrics as indexer_metrics

    reused = indexer_metrics.EMBEDDINGS.labels("reused")._value.get()
    embedded = indexer_metrics.EMBEDDINGS.labels("embedded")._value.get()
    with serving(create_app(settings)) as client, running_indexer(settings):
        assert item(client, "100001")["searchable_version"] == 0  # the seed catalogue, from the seed index
        assert item(client, "read-1") == {"status": 404}
        produce(settings, [upsert("read-1", 1, SHOVEL, category="snow removal", price=30.0)])
        wait_until(lambda: item(client, "read-1").get("searchable_version") == 1, what="v1 searchable")
        assert top_id(client, SHOVEL) == "read-1"
        produce(settings, [upsert("read-1", 2, SHOVEL, category="snow removal", price=25.0)])  # price only
        wait_until(lambda: item(client, "read-1").get("searchable_version") == 2, what="price-only v2 searchable")
        assert item(client, "read-1")["price"] == 25.0 and top_id(client, SHOVEL) == "read-1"
        assert indexer_metrics.EMBEDDINGS.labels("reused")._value.get() == reused + 1  # no model call for v2
        assert indexer_metrics.EMBEDDINGS.labels("embedded")._value.get() == embedded + 1
        metrics = client.get("/metrics").text
        assert 'shoprank_replica_records_applied_total{kind="advance"}' in metrics
        produce(settings, [delete("read-1", 3)])
        wait_until(lambda: item(client, "read-1") == {"status": 404}, what="delete visible")


def test_two_replicas_follow_the_same_changes(settings) -> None:
    other = settings.model_copy(update={"replica_id": settings.replica_id + "-b"})
    titles = {f"pair-{i}": f"Handmade Ceramic Planter Pot Number {i} in Glazed Teal" for i in range(8)}
    with serving(create_app(settings)) as first, serving(create_app(other)) as second, running_indexer(settings):
        produce(settings, [upsert(item, 1, title) for item, title in titles.items()])
        produce(settings, [delete("pair-0", 2)])
        for client in (first, second):
            wait_until(lambda client=client: all(top_id(client, t) == i for i, t in titles.items() if i != "pair-0"),
                       what="every replica serves the new items")
            assert "pair-0" not in [x["id"] for x in retrieve(client, titles["pair-0"], k=20)]


def test_restarted_replica_restores_its_snapshot_and_replays_only_the_rest(settings) -> None:
    before = {f"snap-{i}": f"Vintage Brass Door Knocker Style {i}" for i in range(5)}
    after = {f"late-{i}": f"Bamboo Bath Mat Roll Design {i}" for i in range(5)}

    def found(runtime, titles) -> bool:
        return all(pipelines.retrieve(runtime, query=t, k=1, mode="dense")[0].item.item_id == i
                   for i, t in titles.items())

    with running_indexer(settings):
        runtime = build_runtime(settings)
        handle = start_replication(runtime)
        produce(settings, [upsert(item, 1, title) for item, title in before.items()])
        wait_until(lambda: found(runtime, before), what="first batch in the replica")
        handle.close()  # writes a snapshot with the offsets it covers
        offsets_at_close = dict(handle.follower.state.offsets)
        runtime.close()

        produce(settings, [upsert(item, 1, title) for item, title in after.items()])  # while the replica is down
        produce(settings, [delete("snap-0", 2)])
        runtime = build_runtime(settings)
        applied: list[str] = []
        handle = start_replication(runtime, on_applied=lambda records, _: applied.extend(r.item_id for r in records))
        assert handle.follower.state.offsets.keys() >= offsets_at_close.keys()
        wait_until(lambda: found(runtime, after), what="changes made while down are replayed")
        assert found(runtime, {k: v for k, v in before.items() if k != "snap-0"})
        assert "snap-0" not in [r.item.item_id
                                for r in pipelines.retrieve(runtime, query=before["snap-0"], k=20, mode="dense")]
        assert sorted(applied) == sorted([*after, "snap-0"]), "replayed records the snapshot already covered"
        # the lexical index (BM25 over titles) holds the same items: rebuilt from the store, then the replayed log
        lexical = {when: {r.item.item_id for r in pipelines.retrieve(runtime, query=query, k=20, mode="lexical")}
                   for when, query in (("before", "vintage brass door knocker style"), ("after", "bamboo bath mat roll design"))}
        assert lexical["before"] >= set(before) - {"snap-0"} and "snap-0" not in lexical["before"]
        assert lexical["after"] >= set(after)
        held = runtime.searchable  # the versions came back with the index, not only the vectors
        assert [held.searchable_version(i) for i in ("snap-1", "late-1", "snap-0")] == [1, 1, None]
        assert held.searchable_version("100001") == 0
        handle.close()
        runtime.close()


def test_keyphrase_recommendations_are_cached_when_items_change(settings) -> None:
    """Scope "asked": an item nobody asked for costs no ranker call; once asked, a title change is recomputed by
    the worker (the next request is a cache hit) and a price change keeps the cached keyphrases. Scope "all":
    a new item is filled before anyone asks."""
    import threading

    from indexer.recommend import RecommendationWorker
    from service.store.redis_store import RedisStore

    store = RedisStore(settings)
    with serving(create_app(settings)) as client, running_indexer(settings):
        runtime = build_runtime(settings)
        worker = RecommendationWorker(settings=settings, runtime=runtime)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, kwargs={"stop": stop}, daemon=True)
        thread.start()
        try:
            produce(settings, [upsert("kp-1", 1, SHOVEL, category="snow removal")])
            wait_until(lambda: worker.outcomes["not_asked"] >= 1, timeout_s=60, what="the worker skips an unasked item")
            assert store.peek_recommendations(["kp-1"]) == [None] and worker.outcomes["computed"] == 0
            wait_until(lambda: client.get("/v1/items/kp-1").status_code == 200, what="kp-1 stored")
            body = client.post("/v1/keyphrases/recommend", json={"item_id": "kp-1", "k": 5}).json()
            assert body["source"] == "computed"  # the first request computes, and caches
            assert client.post("/v1/keyphrases/recommend", json={"item_id": "kp-1", "k": 5}).json()["source"] == "cache"

            produce(settings, [upsert("kp-1", 2, ARMCHAIR)])
            # the worker counts an outcome after its write: wait for both, or the count races the store
            cached = wait_until(lambda: worker.outcomes["computed"] >= 1 and (c := store.peek_recommendations(["kp-1"])[0])
                                and c.item_version == 2 and c, timeout_s=60, what="recommendations refreshed for the new title")
            assert worker.outcomes["computed"] == 1 and cached.model_version == runtime.recommendations_version
            wait_until(lambda: client.get("/v1/items/kp-1").json().get("title") == ARMCHAIR, what="version 2 stored")
            body = client.post("/v1/keyphrases/recommend", json={"item_id": "kp-1", "k": 5}).json()
            assert body["source"] == "cache"
            assert [k["keyphrase"] for k in body["keyphrases"]] == [k.keyphrase for k in cached.keyphrases[:5]]

            produce(settings, [upsert("kp-1", 3, ARMCHAIR, price=249.0)])  # price only: the text is unchanged
            wait_until(lambda: worker.outcomes["kept"] >= 1, timeout_s=60, what="the worker keeps the cached keyphrases")
            assert store.get_recommendations("kp-1").item_version == 2  # not recomputed for version 3
            wait_until(lambda: client.get("/v1/items/kp-1").json().get("price") == 249.0, what="version 3 stored")
            assert client.post("/v1/keyphrases/recommend", json={"item_id": "kp-1"}).json()["source"] == "cache"
        finally:
            stop.set()
            thread.join(30)

        # the same group with scope "all" (the committed offsets carry over): a new item is filled unasked
        every = RecommendationWorker(settings=settings.model_copy(update={"recommend_scope": "all"}), runtime=runtime)
        stop = threading.Event()
        thread = threading.Thread(target=every.run, kwargs={"stop": stop}, daemon=True)
        thread.start()
        try:
            produce(settings, [upsert("kp-2", 1, SHOVEL, category="snow removal")])
            wait_until(lambda: every.outcomes["computed"] >= 1 and store.peek_recommendations(["kp-2"])[0],
                       timeout_s=60, what="an unasked item filled")
            assert every.outcomes["computed"] == 1 and every.outcomes["not_asked"] == 0
        finally:
            stop.set()
            thread.join(30)
            runtime.close()
            store.close()
