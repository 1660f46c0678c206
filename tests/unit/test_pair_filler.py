"""The pair filler's plumbing (``service/inference/pair_filler.py``) with a recording scorer; the filler in front
of the real ranker, through HTTP, is in ``tests/integration/test_phased_ranking.py``."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from service.inference.pair_filler import PairFiller


class RecordingScorer:
    """Records each batch it is asked to score; ``gate`` (when given) holds the first call until set."""

    def __init__(self, *, fail: bool = False, gate: threading.Event | None = None) -> None:
        self.batches: list[tuple[str, list[tuple[str, str]]]] = []
        self.fail = fail
        self.gate = gate
        self.entered = threading.Event()  # set once the filler's thread is inside ``score``

    def score(self, lefts, rights, *, task="query_item"):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append((task, list(zip(lefts, rights))))
        if self.fail:
            raise RuntimeError("the backend is down")


@pytest.fixture
def filler():
    filler = PairFiller(max_pending=4, batch=2, nice=0)
    yield filler
    filler.close()


def test_deferred_pairs_are_scored_once_in_batches_of_one_scorer_and_task(filler) -> None:
    gate = threading.Event()
    blocker = RecordingScorer(gate=gate)  # holds the thread, so the pairs below stay queued while deferred
    assert filler.defer(blocker, "query_item", ["w"], ["z"]) == 1 and blocker.entered.wait(10)
    scorer = RecordingScorer()
    assert filler.defer(scorer, "query_item", ["q"] * 2, ["a", "b"]) == 2
    assert filler.defer(scorer, "query_item", ["q", "q"], ["b", "c"]) == 1  # (q, b) is already pending
    assert filler.defer(scorer, "item_item", ["x"], ["y"]) == 1
    gate.set()
    assert filler.wait_idle(10) and filler.pending() == 0
    pairs = [pair for _, batch in scorer.batches for pair in batch]
    assert sorted(pairs) == [("q", "a"), ("q", "b"), ("q", "c"), ("x", "y")]
    assert all(len(batch) <= 2 and len({left for left, _ in batch}) == 1 for _, batch in scorer.batches)
    assert {task for task, batch in scorer.batches if ("x", "y") in batch} == {"item_item"}


def test_past_the_bound_pairs_are_dropped_and_a_failure_leaves_the_thread_running(filler) -> None:
    gate = threading.Event()
    failing = RecordingScorer(fail=True, gate=gate)
    assert filler.defer(failing, "query_item", ["q"] * 6, list("abcdef")) == 4  # max_pending 4
    gate.set()
    assert filler.wait_idle(10)
    working = RecordingScorer()
    assert filler.defer(working, "query_item", ["q"], ["g"]) == 1
    assert filler.wait_idle(10) and working.batches == [("query_item", [("q", "g")])]


def test_nothing_is_queued_after_close() -> None:
    filler = PairFiller()
    filler.close()
    assert filler.defer(RecordingScorer(), "query_item", ["q"], ["a"]) == 0 and filler.pending() == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own niceness is Linux's")
def test_the_filler_thread_alone_runs_at_the_lower_priority() -> None:
    """Requests' threads keep their priority: only the filler's thread is niced."""
    seen: dict[str, int] = {}

    class NiceProbe(RecordingScorer):
        def score(self, lefts, rights, *, task="query_item"):
            seen["filler"] = thread_nice(threading.get_native_id())
            return super().score(lefts, rights, task=task)

    filler = PairFiller(nice=7)
    try:
        filler.defer(NiceProbe(), "query_item", ["q"], ["a"])
        assert filler.wait_idle(10)
    finally:
        filler.close()
    assert seen["filler"] == thread_nice(threading.get_native_id()) + 7


def thread_nice(tid: int) -> int:
    """Field 19 of /proc/self/task/<tid>/stat (after the parenthesised name)."""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])
