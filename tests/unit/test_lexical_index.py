"""The lexical index (real bm25s) and its write paths, and reciprocal rank fusion.

The delta must score a title exactly as a bm25s build with the same corpus statistics does, writes must be
searchable when they return (upsert, replace, delete), a rebuild must keep writes made while it runs, and
both write paths (``Runtime.apply_items`` and the replica follower) must keep it current.
"""

from __future__ import annotations

import logging
import threading

import pytest

from service.lexical import Bm25LexicalIndex, load_or_build
from service.ranking.fusion import reciprocal_rank_fusion
from service.runtime import Runtime
from service.store.base import ItemDocument
from service.stream.vector_log import VectorRecord
from tests.unit.test_runtime_apply import HashEncoder, doc, runtime
from tests.unit.test_searchable import follower, raw

TITLES = [("1", "cordless drill driver kit"), ("2", "red claw hammer"), ("3", "drill bit set titanium"),
          ("4", "oak vanity with top"), ("5", "cordless impact driver"), ("6", "garden hose reel")]


def ids(hits) -> list[str]:
    return [item_id for item_id, _ in hits]


def test_a_title_scores_the_same_in_the_delta_as_in_the_bm25s_base() -> None:
    index = Bm25LexicalIndex(TITLES)
    base = dict(index.search("cordless drill driver", 10))
    index.upsert([("1", "cordless drill driver kit")])  # the same title (a price-only update): nothing to do
    assert index.delta_size == 0
    index.upsert([("1", "old"), ("5", "old")])
    index.upsert([("1", "cordless drill driver kit"), ("5", "cordless impact driver")])  # same titles, now in the delta
    assert index.delta_size == 2
    delta = dict(index.search("cordless drill driver", 10))
    assert delta.keys() == base.keys()
    for item_id, score in base.items():
        assert delta[item_id] == pytest.approx(score, rel=1e-5)  # bm25s scores in float32


def test_writes_are_searchable_when_they_return() -> None:
    index = Bm25LexicalIndex(TITLES)
    assert ids(index.search("hammer", 5)) == ["2"] and index.search("zyxwv", 5) == []
    index.upsert([("2", "zyxwv sledge hammer"), ("7", "zyxwv drill")])  # a replaced title and a new item
    assert sorted(ids(index.search("zyxwv", 5))) == ["2", "7"]
    assert ids(index.search("claw", 5)) == []  # the old title of "2" is gone from the base
    index.delete(["7", "3"])
    assert ids(index.search("zyxwv", 5)) == ["2"] and "3" not in ids(index.search("drill", 10))
    assert sorted(ids(index.search("drill", 10))) == ["1"] and len(index) == 5
    assert index.search("the and", 5) == []  # stopwords only: no words to match


def test_a_rebuild_folds_the_delta_in_and_keeps_writes_made_while_it_runs() -> None:
    index = Bm25LexicalIndex(TITLES, rebuild_after=3, background=False)
    index.upsert([("7", "zyxwv drill"), ("8", "zyxwv saw")])
    assert index.delta_size == 2 and index.rebuilds == 0
    index.upsert([("9", "zyxwv level")])  # the third delta title triggers the rebuild
    assert index.rebuilds == 1 and index.delta_size == 0
    assert sorted(ids(index.search("zyxwv", 5))) == ["7", "8", "9"]
    # a write that lands while a rebuild builds: in the new delta, and its old base row masked
    index.rebuild_after = 10**6
    built = threading.Event()
    original = index.rebuild

    def rebuild_with_a_write() -> None:
        import service.lexical as lexical

        real_build = lexical._Base.build

        def build(docs):
            base = real_build(docs)
            index.upsert([("8", "qwerty saw")])  # after the snapshot was taken
            index.delete(["9"])
            built.set()
            return base

        lexical._Base.build = build
        try:
            original()
        finally:
            lexical._Base.build = real_build

    rebuild_with_a_write()
    assert built.is_set() and index.delta_size == 1
    assert sorted(ids(index.search("zyxwv", 5))) == ["7"] and ids(index.search("qwerty", 5)) == ["8"]


def test_background_rebuild_runs_past_the_threshold() -> None:
    index = Bm25LexicalIndex(TITLES, rebuild_after=2)
    index.upsert([("7", "zyxwv drill"), ("8", "zyxwv saw")])
    index.wait_for_rebuild(30)
    assert index.rebuilds == 1 and index.delta_size == 0 and sorted(ids(index.search("zyxwv", 5))) == ["7", "8"]


def test_embedded_writes_keep_the_lexical_index_current() -> None:
    rt: Runtime = runtime()
    rt.lexical = Bm25LexicalIndex([])
    rt.apply_items(upserts=[doc("a", 1, "red chair"), doc("b", 1, "blue lamp")])
    assert ids(rt.lexical.search("chair", 5)) == ["a"]
    rt.apply_items(upserts=[doc("a", 0, "stale sofa")])  # refused: not newer
    assert rt.lexical.search("sofa", 5) == []
    rt.apply_items(upserts=[doc("a", 2, "green sofa")], deletes=[("b", 2)])
    assert ids(rt.lexical.search("sofa", 5)) == ["a"] and rt.lexical.search("chair lamp", 5) == []


def test_the_replica_follower_keeps_the_lexical_index_current() -> None:
    f, enc = follower(), HashEncoder()
    f.lexical = Bm25LexicalIndex([])
    chair = ItemDocument(item_id="a", version=1, title="red chair")
    f.apply([raw(0, VectorRecord("a", 1, 0, enc.encode(["red chair"])[0], chair))])
    assert ids(f.lexical.search("chair", 5)) == ["a"]
    sofa = ItemDocument(item_id="a", version=2, title="green sofa")
    f.apply([raw(1, VectorRecord("a", 2, 0, enc.encode(["green sofa"])[0], sofa))])
    assert ids(f.lexical.search("sofa", 5)) == ["a"] and f.lexical.search("chair", 5) == []
    f.apply([raw(2, VectorRecord("a", 3, 0))])  # delete
    assert f.lexical.search("sofa", 5) == [] and len(f.lexical) == 0


def test_reciprocal_rank_fusion() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "d"]], c=60, k=10)
    assert [key for key, _ in fused] == ["c", "a", "b", "d"]  # c is in both lists
    assert fused[0][1] == pytest.approx(1 / 63 + 1 / 61) and fused[1][1] == pytest.approx(1 / 61)
    # items just past k in both lists can beat the first of one list
    assert reciprocal_rank_fusion([["x", "y"], ["z", "y"]], c=60, k=1)[0][0] == "y"
    assert reciprocal_rank_fusion([[], []], c=60, k=5) == []


def test_a_seed_snapshot_restores_the_same_index_and_only_for_the_same_titles(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="service.lexical")
    built = load_or_build(tmp_path / "lexical", TITLES)
    assert (tmp_path / "lexical" / "lexical.json").exists()
    restored = load_or_build(tmp_path / "lexical", TITLES)
    assert "restored" in caplog.text
    for query in ("cordless drill driver", "hammer", "garden hose"):
        assert restored.search(query, 10) == built.search(query, 10)
    restored.upsert([("2", "zyxwv sledge hammer")])  # the restored index takes writes like a built one
    assert ids(restored.search("zyxwv", 5)) == ["2"] and ids(restored.search("claw", 5)) == []
    caplog.clear()
    other = load_or_build(tmp_path / "lexical", [*TITLES[:-1], ("6", "garden hose cart")])  # other titles: rebuilt
    assert "restored" not in caplog.text and ids(other.search("cart", 5)) == ["6"]


def test_the_delta_postings_find_what_a_scan_of_every_delta_title_finds() -> None:
    """The delta's postings are an index, not a filter: after writes, rewrites and deletes a search returns
    exactly the scores of scoring every live delta title (the formula the delta had before postings)."""
    import random

    from service.lexical import _bm25, tokenize

    rng = random.Random(3)
    words = ["drill", "cordless", "hammer", "oak", "vanity", "hose", "reel", "bit", "set", "kit", "red", "steel"]
    index = Bm25LexicalIndex(TITLES, rebuild_after=10_000, background=False)
    live: dict[str, str] = {}
    for step in range(600):
        item_id = f"d{rng.randrange(150)}"
        if rng.random() < 0.15:
            index.delete([item_id])
            live.pop(item_id, None)
        else:
            title = " ".join(rng.choices(words, k=rng.randint(1, 5)))
            index.upsert([(item_id, title)])
            live[item_id] = title
        if step % 50 == 0:
            for query in ("cordless drill", "red hammer kit", "steel reel", "oak"):
                query_words = list(dict.fromkeys(tokenize([query])[0]))
                expected = {i: s for i, t in live.items()
                            if (s := _bm25(query_words, tokenize([t])[0], index._base)) > 0}
                found = {i: s for i, s in index.search(query, k=1_000) if i.startswith("d")}
                assert found == expected


def test_a_search_runs_in_the_calling_thread(monkeypatch) -> None:
    """bm25s starts a thread pool per retrieve when asked for any threads: on a request path that is a thread
    start and two wake-ups per search (docs/indexing.md, "the API waits for a core")."""
    import bm25s

    index = Bm25LexicalIndex(TITLES)

    def no_pool(*args, **kwargs):
        raise AssertionError("bm25s started a thread pool for a search")

    monkeypatch.setattr(bm25s, "ThreadPoolExecutor", no_pool)
    assert ids(index.search("cordless driver", 2)) == ["5", "1"]
