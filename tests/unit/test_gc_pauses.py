"""GC pauses are timed per generation, and the start-up heap can be exempted from collection."""

from __future__ import annotations

import gc

from service.gc_pauses import freeze_startup_heap, track_gc_pauses


def test_every_collection_is_timed_by_generation_once_per_process() -> None:
    registry = track_gc_pauses()
    assert track_gc_pauses() is registry
    assert sum(getattr(cb, "__module__", "") == "service.gc_pauses" for cb in gc.callbacks) == 1

    def count(generation: str) -> float:
        return registry.get_sample_value("shoprank_gc_pause_seconds_count", {"generation": generation}) or 0.0

    before, sum_before = count("2"), registry.get_sample_value("shoprank_gc_pause_seconds_sum", {"generation": "2"}) or 0
    gc.collect(2)
    assert count("2") == before + 1
    assert registry.get_sample_value("shoprank_gc_pause_seconds_sum", {"generation": "2"}) > sum_before


def test_freezing_exempts_what_is_alive_and_leaves_later_objects_collectable() -> None:
    before = gc.get_freeze_count()
    alive = [[n] for n in range(10_000)]
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= before + len(alive)
        later = []
        later.append(later)  # a cycle made after the freeze
        del later
        assert gc.collect() >= 1  # still found by a collection
    finally:
        gc.unfreeze()
