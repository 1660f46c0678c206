"""Pair scores warmed off the request path (real Tansu, Redis, ONNX): a ranked query is recorded with the items
it re-scored, the next in line and its entry bar; ``indexer recommend`` scores the next-in-line pairs, a retitled
item it re-scored and a new item close to it, and shares them through Redis; the API's next rank that meets
them reads the pairs instead of running the cross-encoder."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import redis

from service.api.app import create_app
from service.inference.metrics import INFERENCE_REGISTRY
from service.runtime import build_runtime
from service.settings import Settings
from service.store.pair_scores import HeadQuery, RedisPairScores
from tests.conftest import serving
from tests.integration.nrt_helpers import nrt_settings, produce, running_indexer, upsert, wait_until

pytestmark = pytest.mark.integration

QUERY = "titanium snow shovel"
SHOVEL = "Zebra Striped Titanium Snow Shovel with Ergonomic Handle"


def counter(name: str) -> float:
    return INFERENCE_REGISTRY.get_sample_value(f"shoprank_{name}_total") or 0.0


@pytest.fixture()
def settings(kafka_bootstrap, redis_url, model_repo, tmp_path):
    return nrt_settings(kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, model_repo=model_repo,
                        state_dir=tmp_path, replica_id=f"r-{time.time_ns()}", pair_warming=True)


def test_changed_items_are_scored_for_the_head_query_before_the_search_that_meets_them(settings) -> None:
    from indexer.recommend import RecommendationWorker

    with serving(create_app(settings)) as client, running_indexer(settings):
        items = client.post("/v1/retrieve", json={"query": QUERY, "k": 12}).json()["items"]
        candidates = [{"id": i["id"], "title": i["title"]} for i in items]
        assert client.post("/v1/rank", json={"query": QUERY, "items": candidates, "rerank_depth": 3}).status_code == 200
        # the worker with the newcomer rule on (a wide margin: any new item is close enough)
        runtime = build_runtime(settings.model_copy(update={"pair_warm_margin": 0.5}))
        head = {h.query: h for h in runtime.pair_scores.head_queries("query_item")}
        assert QUERY in head and -1.0 <= head[QUERY].bar <= 1.0  # the first record of a process is sent at once
        rescored = head[QUERY].item_ids
        assert len(rescored) == 3 and set(rescored) <= {c["id"] for c in candidates}
        titles = {c["id"]: c["title"] for c in candidates}
        assert len(head[QUERY].next_in_line) == 12 - 3  # the rest of the candidates, first phase's order
        assert all(titles[item_id] == text and item_id not in rescored for item_id, text in head[QUERY].next_in_line)

        def shared(text: str) -> np.ndarray | None:
            return runtime.pair_scores.get_many([(runtime.scorer.model_version, "query_item", QUERY, text)])[0]

        worker = RecommendationWorker(settings=runtime.settings, runtime=runtime)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, kwargs={"stop": stop}, daemon=True)
        thread.start()
        retitled = titles[rescored[0]] + " (2-Pack)"
        try:
            wait_until(lambda: all(shared(text) is not None for _, text in head[QUERY].next_in_line), timeout_s=60,
                       what="the worker scores the pairs next in line")
            assert shared(retitled) is None and shared(SHOVEL) is None
            produce(settings, [upsert(rescored[0], 1, retitled), upsert("warm-1", 1, SHOVEL)])
            wait_until(lambda: shared(retitled) is not None and shared(SHOVEL) is not None, timeout_s=60,
                       what="the worker warms the retitled item's and the new item's pairs")
        finally:
            stop.set()
            thread.join(30)
            runtime.close()

        wait_until(lambda: client.get(f"/v1/items/{rescored[0]}").json().get("searchable_version") == 1,
                   what="the retitle indexed")
        lru_misses, shared_hits = counter("pair_cache_misses"), counter("pair_shared_hits")
        fresh = [{"id": c["id"], "title": retitled if c["id"] == rescored[0] else c["title"]} for c in candidates]
        body = client.post("/v1/rank", json={"query": QUERY, "items": fresh, "rerank_depth": 3}).json()
        assert sum(item["phase"] == 2 for item in body["items"]) == 3
        missed = counter("pair_cache_misses") - lru_misses
        assert missed >= 1 and counter("pair_shared_hits") - shared_hits == missed  # none computed by the API


def test_the_head_query_log_keeps_the_newest_and_a_dead_redis_reads_as_nothing_and_is_not_asked_again_at_once(redis_url) -> None:
    prefix = f"hq-{time.time_ns()}:"
    scores = RedisPairScores(Settings(redis_url=redis_url, redis_prefix=prefix, pair_warm_queries=3, pair_warming=True),
                             flush_every_s=0)
    for n in range(5):
        scores.record_query("query_item", HeadQuery(f"q{n}", 0.25 * n, (f"item-{n}",), (("next", f"title {n}"),)))
    assert scores.head_queries("query_item") == [HeadQuery(f"q{n}", 0.25 * n, (f"item-{n}",), (("next", f"title {n}"),))
                                                 for n in (4, 3, 2)]
    assert redis.Redis.from_url(redis_url).hlen(f"{prefix}headq-info:query_item") == 3  # trimmed with the set
    many = RedisPairScores(Settings(redis_url=redis_url, redis_prefix=prefix + "many:", pair_warm_queries=10,
                                    pair_warming=True), flush_every_s=3600)
    for n in range(20_010):  # one flush far past what Lua's unpack takes at once
        many.record_query("query_item", HeadQuery(f"q{n}", 0.5))
    many.flush()
    assert len(many.head_queries("query_item")) == 10
    assert redis.Redis.from_url(redis_url).hlen(f"{prefix}many:headq-info:query_item") == 10
    many.close()
    scores.put_many([("ranker:1", "query_item", "q", "t")], np.ones((1, 4), dtype=np.float32))
    assert scores.get_many([("ranker:1", "query_item", "q", "t"), ("ranker:1", "query_item", "q", "u")])[1] is None
    scores.close()

    pair = ("ranker:1", "query_item", "q", "t")
    dead = RedisPairScores(Settings(redis_url="redis://127.0.0.1:1/0", redis_timeout_s=0.2, pair_shared_retry_s=3600))
    errors, skipped = counter("pair_shared_errors"), counter("pair_shared_skipped")
    assert dead.get_many([pair]) == [None]  # a cache never fails a request
    assert counter("pair_shared_errors") == errors + 1
    dead.put_many([pair], np.ones((1, 4), dtype=np.float32))  # nor waits again for a Redis that just failed
    assert dead.get_many([pair, pair]) == [None, None]
    assert counter("pair_shared_errors") == errors + 1 and counter("pair_shared_skipped") == skipped + 3
    retrying = RedisPairScores(Settings(redis_url="redis://127.0.0.1:1/0", redis_timeout_s=0.2, pair_shared_retry_s=0))
    assert retrying.get_many([pair]) == [None] and retrying.get_many([pair]) == [None]
    assert counter("pair_shared_errors") == errors + 3  # the window over, each call asks again
    retrying.close()
    dead.record_query("query_item", HeadQuery("q", 0.5))
    assert dead.head_queries("query_item") is None
