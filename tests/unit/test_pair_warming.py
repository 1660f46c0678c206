"""Which (head query, changed item) pairs `indexer recommend` warms: those whose cosine clears the query's
entry bar less the margin, most clearance first, capped."""

from __future__ import annotations

import numpy as np

from indexer.pair_warmer import pairs_to_warm


def test_pairs_clearing_the_bar_less_the_margin_most_clearance_first() -> None:
    cosines = np.array([[0.90, 0.40, 0.70],   # query 0, bar 0.8: item 0 (+0.10), item 2 (-0.10 → within 0.15)
                        [0.20, 0.62, 0.10]], dtype=np.float32)  # query 1, bar 0.5: item 1 (+0.12)
    bars = np.array([0.8, 0.5])
    assert pairs_to_warm(cosines, bars, margin=0.15, limit=10) == [(1, 1), (0, 0), (0, 2)]
    assert pairs_to_warm(cosines, bars, margin=0.0, limit=10) == [(1, 1), (0, 0)]
    assert pairs_to_warm(cosines, bars, margin=0.15, limit=1) == [(1, 1)]


def test_nothing_clears_an_unreachable_bar() -> None:
    assert pairs_to_warm(np.zeros((2, 3), dtype=np.float32), np.array([0.9, 0.9]), margin=0.05, limit=10) == []
    assert pairs_to_warm(np.zeros((0, 3), dtype=np.float32), np.zeros(0), margin=0.05, limit=10) == []


def test_items_a_query_re_scored_come_first_whatever_their_cosine_and_once() -> None:
    cosines = np.array([[0.10, 0.95]], dtype=np.float32)  # item 0 fell far, item 1 clears the bar
    pairs = pairs_to_warm(cosines, np.array([0.8]), margin=0.0, limit=10, rescored=[(0, 0), (0, 1)])
    assert pairs == [(0, 0), (0, 1)]
    assert pairs_to_warm(cosines, np.array([0.8]), margin=0.0, limit=1, rescored=[(0, 0)]) == [(0, 0)]


def test_without_a_margin_only_the_items_a_query_re_scored() -> None:
    cosines = np.array([[0.10, 0.95]], dtype=np.float32)
    assert pairs_to_warm(cosines, np.array([0.8]), margin=None, limit=10, rescored=[(0, 0), (0, 0)]) == [(0, 0)]


def test_the_shared_tier_exists_only_with_redis_and_warming_on() -> None:
    from service.settings import Settings
    from service.store.pair_scores import RedisPairScores, make_pair_scores

    assert make_pair_scores(Settings(redis_url="redis://127.0.0.1:1/0")) is None  # off by default (docs/indexing.md)
    assert make_pair_scores(Settings(redis_url=None, pair_warming=True)) is None  # one process: nothing to share
    shared = make_pair_scores(Settings(redis_url="redis://127.0.0.1:1/0", pair_warming=True))
    assert isinstance(shared, RedisPairScores)
    shared.close()


def test_without_a_margin_the_warmer_scores_re_scored_items_and_encodes_no_query() -> None:
    """The default path: no query vectors (the newcomer rule is off), only the queries that re-scored the item."""
    from types import SimpleNamespace

    from indexer.pair_warmer import PairWarmer
    from service.settings import Settings
    from service.store.base import ItemDocument
    from service.store.pair_scores import HeadQuery

    scored: list = []

    class NoEncoder:
        dim = 4

        def encode(self, texts, *, kind):
            raise AssertionError("no query is encoded without a margin")

    runtime = SimpleNamespace(
        settings=Settings(pair_warm_margin=None), encoder=NoEncoder(),
        pair_scores=SimpleNamespace(head_queries=lambda task: [HeadQuery("drill", 0.9, ("a",)), HeadQuery("saw", 0.9)]),
        scorer=SimpleNamespace(score=lambda lefts, rights, task: scored.append((list(lefts), list(rights)))))
    warmer = PairWarmer(runtime)
    docs = [ItemDocument(item_id="a", title="Cordless Drill v2"), ItemDocument(item_id="b", title="Hammer")]
    assert warmer.warm(docs, np.ones((2, 4), dtype=np.float32)) == 1
    assert scored == [(["drill"], ["Cordless Drill v2"])]
