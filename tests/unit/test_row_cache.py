"""The output LRUs: bounded, least recently used out first, thread-safe, counted on /metrics; the ranker
skips the backend for cached pairs and the encoder for cached texts (real ONNX models from model_repo/)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from service.inference.factory import make_encoder, make_pair_scorer
from service.inference.metrics import INFERENCE_REGISTRY
from service.inference.onnx_local import OnnxLocalBackend
from service.inference.row_cache import embedding_cache, pair_score_cache
from service.runtime import encode_all
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def counters() -> tuple[float, float]:
    return (INFERENCE_REGISTRY.get_sample_value("shoprank_pair_cache_hits_total") or 0.0,
            INFERENCE_REGISTRY.get_sample_value("shoprank_pair_cache_misses_total") or 0.0)


def row(x: float) -> np.ndarray:
    return np.full(4, x, dtype=np.float32)


def test_least_recently_used_goes_first_and_hits_are_counted() -> None:
    cache = pair_score_cache(2)
    hits, misses = counters()
    cache.put_many(["a", "b"], np.stack([row(1), row(2)]))
    assert cache.get_many(["a"])[0].tolist() == [1, 1, 1, 1]  # "a" is now the most recent
    cache.put_many(["c"], np.stack([row(3)]))  # evicts "b"
    got = cache.get_many(["a", "b", "c"])
    assert got[1] is None and got[0][0] == 1 and got[2][0] == 3 and len(cache) == 2
    assert counters() == (hits + 3, misses + 1)


def test_size_zero_stores_nothing() -> None:
    cache = pair_score_cache(0)
    cache.put_many(["a"], np.stack([row(1)]))
    assert cache.get_many(["a"]) == [None] and len(cache) == 0


def test_concurrent_writers_and_readers_keep_the_bound() -> None:
    cache = pair_score_cache(100)

    def work(seed: int) -> None:
        for i in range(2_000):
            key = (seed * 7 + i) % 300
            if cache.get_many([key])[0] is None:
                cache.put_many([key], np.stack([row(key)]))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 100
    assert all(v is None or v[0] == k for k, v in zip(range(300), cache.get_many(list(range(300)))))


class Counting:
    def __init__(self, inner) -> None:
        self.inner, self.rows = inner, 0

    def model_info(self, model):
        return self.inner.model_info(model)

    def infer(self, model, inputs):
        self.rows += len(inputs["input_ids"])
        return self.inner.infer(model, inputs)


def test_the_ranker_runs_only_the_pairs_it_has_not_seen() -> None:
    settings = Settings(model_repo=ROOT / "model_repo", pair_cache_size=100)
    backend = Counting(OnnxLocalBackend(settings.model_repo, intra_op_threads=1))
    scorer = make_pair_scorer(backend, settings)
    titles = ["Simpson Strong-Tie 12-Gauge Angle", "Dremel Multi-Max Oscillating Tool Kit", "Heat Shrink Tubing"]
    first = scorer.score(["angle bracket"] * 3, titles)
    assert backend.rows == 3
    again = scorer.score(["angle bracket"] * 3, titles[::-1])
    assert backend.rows == 3  # every pair from the cache, in the caller's order
    np.testing.assert_array_equal(again.relevance.expected, first.relevance.expected[::-1])
    np.testing.assert_array_equal(again.ctr, first.ctr[::-1])
    mixed = scorer.score(["angle bracket", "angle bracket"], [titles[0], "Cordless Drill Driver Kit"])
    assert backend.rows == 4  # only the new pair
    assert mixed.relevance.expected[0] == first.relevance.expected[0]
    other_task = scorer.score(["angle bracket"], [titles[0]], task="query_query")
    assert backend.rows == 5  # the task is part of the key
    assert other_task.relevance.expected[0] != first.relevance.expected[0]


def test_the_encoder_encodes_only_the_texts_it_has_not_seen() -> None:
    settings = Settings(model_repo=ROOT / "model_repo", item_encoder_model="")
    backend = Counting(OnnxLocalBackend(settings.model_repo, intra_op_threads=1))
    plain = make_encoder(OnnxLocalBackend(settings.model_repo, intra_op_threads=1), settings)
    encoder = make_encoder(backend, settings, cache=embedding_cache(100))
    hits = INFERENCE_REGISTRY.get_sample_value("shoprank_embedding_cache_hits_total") or 0.0
    texts = ["cordless drill", "angle bracket", "heat shrink tubing"]
    first = encoder.encode(texts, kind="query")
    assert backend.rows == 3
    np.testing.assert_allclose(first, plain.encode(texts, kind="query"), atol=1e-5)
    again = encoder.encode(["heat shrink tubing", "deck screws", "cordless drill"], kind="query")
    assert backend.rows == 4  # only "deck screws" reached the model
    np.testing.assert_array_equal(again[0], first[2])
    np.testing.assert_array_equal(again[2], first[0])
    np.testing.assert_allclose(again[1], plain.encode(["deck screws"], kind="query")[0], atol=1e-5)
    assert (INFERENCE_REGISTRY.get_sample_value("shoprank_embedding_cache_hits_total") or 0.0) - hits == 2
    as_item = encoder.encode(["cordless drill"], kind="item")  # the kind is part of the key (prefix, token cut)
    assert backend.rows == 5
    np.testing.assert_allclose(as_item, plain.encode(["cordless drill"], kind="item"), atol=1e-5)


def test_an_encoder_without_a_cache_always_encodes() -> None:
    settings = Settings(model_repo=ROOT / "model_repo", item_encoder_model="")
    backend = Counting(OnnxLocalBackend(settings.model_repo, intra_op_threads=1))
    for cache in (None, embedding_cache(0)):
        encoder = make_encoder(backend, settings, cache=cache)
        encoder.encode(["cordless drill"], kind="query")
        encoder.encode(["cordless drill"], kind="query")
    assert backend.rows == 4


def test_bulk_builds_go_past_the_embedding_cache() -> None:
    settings = Settings(model_repo=ROOT / "model_repo", item_encoder_model="")
    cache = embedding_cache(100)
    encoder = make_encoder(OnnxLocalBackend(settings.model_repo, intra_op_threads=1), settings, cache=cache)
    vectors = encode_all(encoder, ["cordless drill", "angle bracket", "deck screws"], kind="item", batch=2, label="t")
    assert vectors.shape == (3, encoder.dim) and len(cache) == 0 and encoder.cache is cache
    encoder.encode(["cordless drill"], kind="item")
    assert len(cache) == 1


class DictTier:
    """A shared tier in a dict (the plumbing; tests/integration/test_pair_warming.py runs the Redis one)."""

    def __init__(self) -> None:
        self.rows: dict = {}

    def get_many(self, keys):
        return [self.rows.get(tuple(k)) for k in keys]

    def put_many(self, keys, values):
        self.rows.update({tuple(k): np.array(v) for k, v in zip(keys, values)})


def test_the_ranker_reads_the_shared_tier_before_running_and_shares_what_it_runs() -> None:
    settings = Settings(model_repo=ROOT / "model_repo", pair_cache_size=100)
    backend = Counting(OnnxLocalBackend(settings.model_repo, intra_op_threads=1))
    tier = DictTier()
    warmer = make_pair_scorer(backend, settings, shared=tier)  # another process: it fills the tier
    titles = ["Simpson Strong-Tie 12-Gauge Angle", "Dremel Multi-Max Oscillating Tool Kit"]
    warmed = warmer.score(["angle bracket"] * 2, titles)
    assert backend.rows == 2 and len(tier.rows) == 2
    serving = make_pair_scorer(backend, settings, shared=tier)  # its own, empty LRU
    got = serving.score(["angle bracket"] * 3, [titles[1], "Heat Shrink Tubing", titles[0]])
    assert backend.rows == 3  # only the pair neither the LRU nor the tier held
    np.testing.assert_array_equal(got.relevance.expected[[2, 0]], warmed.relevance.expected)
    assert len(tier.rows) == 3  # and that one is shared now
    serving.score(["angle bracket"], ["Heat Shrink Tubing"])
    assert backend.rows == 3 and len(tier.rows) == 3  # from the LRU, the tier not asked to store it again


def test_a_deferral_sees_what_either_tier_holds_and_each_pair_is_looked_up_once() -> None:
    """A pair another process shared counts as held (no deferral, no model call); only the pairs neither tier
    holds reach ``defer``'s choice, and the deferred ones are neither scored nor cached."""
    settings = Settings(model_repo=ROOT / "model_repo", pair_cache_size=100)
    backend = Counting(OnnxLocalBackend(settings.model_repo, intra_op_threads=1))
    shared = DictTier()
    scorer = make_pair_scorer(backend, settings, shared=shared)
    titles = ["Simpson Strong-Tie 12-Gauge Angle", "Dremel Multi-Max Oscillating Tool Kit", "Heat Shrink Tubing",
              "Cordless Drill Driver Kit"]
    other = make_pair_scorer(OnnxLocalBackend(settings.model_repo, intra_op_threads=1), settings, shared=shared)
    reference = other.score(["angle bracket"] * 4, titles)  # another replica scores all four, sharing them
    scorer.score(["angle bracket"], titles[:1])  # this one holds the first in its LRU
    assert backend.rows == 0
    del shared.rows[next(key for key in shared.rows if key[3] == titles[3])]  # the fourth: held by no tier
    hits, misses = counters()
    seen: list[list[bool]] = []

    def defer(held: np.ndarray) -> np.ndarray:
        seen.append(held.tolist())
        return ~held

    heads, deferred = scorer.score_or_defer(["angle bracket"] * 4, titles, defer=defer)
    assert seen == [[True, True, True, False]] and deferred.tolist() == [False, False, False, True]
    assert backend.rows == 0 and counters() == (hits + 1, misses + 3)
    np.testing.assert_array_equal(heads.relevance.expected, reference.relevance.expected[:3])
    heads, deferred = scorer.score_or_defer(["angle bracket"] * 4, titles, defer=lambda held: np.zeros(4, bool))
    assert backend.rows == 1 and not deferred.any() and counters() == (hits + 4, misses + 4)  # 3 now in the LRU
    np.testing.assert_array_equal(heads.relevance.expected[:3], reference.relevance.expected[:3])
    # the fourth ran alone: the int8 ranker's activation ranges are per batch, so a few thousandths apart
    np.testing.assert_allclose(heads.relevance.expected[3], reference.relevance.expected[3], atol=0.02)
