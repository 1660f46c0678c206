"""The phased-ranking rule (``service/ranking/phases.py``): which candidates the cross-encoder sees and
how the two phases' candidates are ordered across the boundary."""

from __future__ import annotations

import numpy as np
import pytest

from service.ranking import phases


def heads(p1, p2, ctr=None) -> phases.Heads:
    p1, p2 = np.asarray(p1, dtype=float), np.asarray(p2, dtype=float)
    ctr = np.zeros(len(p1)) if ctr is None else np.asarray(ctr, dtype=float)
    return phases.Heads(p1, p2, [f"l{i}" for i in range(len(p1))], ctr, ctr / 2)


def test_second_phase_takes_the_head_of_the_first_phase_order() -> None:
    order = np.array([3, 0, 2, 1])
    assert phases.second_phase_rows(order, 2).tolist() == [3, 0]
    assert phases.second_phase_rows(order, 0).tolist() == []
    assert phases.second_phase_rows(order, 10).tolist() == [3, 0, 2, 1]
    with pytest.raises(ValueError):
        phases.second_phase_rows(order, -1)


def test_merge_lays_second_phase_heads_over_the_rescored_rows_only() -> None:
    first = heads([0.1, 0.2, 0.3, 0.4], [0.0, 0.1, 0.1, 0.2], ctr=[0.5, 0.5, 0.5, 0.5])
    second = heads([0.9, 0.05], [0.8, 0.01], ctr=[0.7, 0.1])
    merged, phase = phases.merge(first, second, np.array([3, 1]))
    assert phase.tolist() == [1, 2, 1, 2]
    assert merged.p_partial_or_better.tolist() == [0.1, 0.05, 0.3, 0.9]
    assert merged.p_exact.tolist() == [0.0, 0.01, 0.1, 0.8]
    assert merged.ctr.tolist() == [0.5, 0.1, 0.5, 0.7] and merged.cvr.tolist() == [0.25, 0.05, 0.25, 0.35]
    assert merged.labels == ["l0", "l1", "l2", "l0"]
    assert first.p_partial_or_better.tolist() == [0.1, 0.2, 0.3, 0.4]  # inputs untouched
    with pytest.raises(ValueError):
        phases.merge(first, second, np.array([3]))


def test_rescored_candidates_stay_above_first_phase_ones_whatever_their_scores() -> None:
    score = np.array([0.9, 0.2, 0.8, 0.3, 0.95])
    phase = np.array([1, 2, 1, 2, 1])
    filtered = np.zeros(5, dtype=bool)
    assert phases.phased_order(score, filtered, phase).tolist() == [3, 1, 4, 0, 2]


def test_filtered_candidates_come_last_with_the_same_rule_inside() -> None:
    score = np.array([0.9, 0.2, 0.8, 0.3, 0.95, 0.5])
    phase = np.array([1, 2, 1, 2, 1, 2])
    filtered = np.array([False, True, True, False, False, True])
    # unfiltered: phase 2 (3) then phase 1 by score (4, 0); filtered: phase 2 (5, 1) then phase 1 (2)
    assert phases.phased_order(score, filtered, phase).tolist() == [3, 4, 0, 5, 1, 2]


def test_ties_break_by_tiebreak_then_input_order() -> None:
    score = np.array([0.5, 0.5, 0.5, 0.5])
    phase = np.full(4, 2)
    filtered = np.zeros(4, dtype=bool)
    assert phases.phased_order(score, filtered, phase).tolist() == [0, 1, 2, 3]
    assert phases.phased_order(score, filtered, phase, tiebreak=np.array([0.1, 0.4, 0.4, 0.2])).tolist() == [1, 2, 3, 0]


def test_single_phase_extremes_reduce_to_the_value_model_order() -> None:
    """All phase 2 (depth ≥ n) or all phase 1 (depth 0): plain order by score, filtered last — the order
    ``value_model.rank_by_value`` gives."""
    from service.ranking.value_model import rank_by_value
    from service.settings import WeightProfile

    rng = np.random.default_rng(0)
    p1 = rng.random(50)
    p2 = p1 * rng.random(50)
    ctr, cvr = rng.random(50), rng.random(50)
    result = rank_by_value(expected_relevance=p1 + p2, p_partial_or_better=p1, ctr=ctr, cvr=cvr,
                           weights=WeightProfile(relevance=1, ctr=0.3, cvr=0.3), min_relevance=0.4)
    for phase in (1, 2):
        order = phases.phased_order(result.score, result.filtered, np.full(50, phase))
        assert order.tolist() == result.order.tolist()


def test_a_query_held_but_for_a_few_pairs_defers_those_and_a_cold_one_defers_none() -> None:
    held = np.array([True, False, True, True, False])
    assert phases.deferred_rows(held, 3).tolist() == [False, True, False, False, True]
    assert phases.deferred_rows(held, 1).tolist() == [False] * 5  # more missing than allowed: re-score all now
    assert phases.deferred_rows(held, 0).tolist() == [False] * 5  # deferral off
    assert phases.deferred_rows(np.zeros(3, dtype=bool), 5).tolist() == [False] * 3  # a cold query
    assert phases.deferred_rows(np.ones(3, dtype=bool), 5).tolist() == [False] * 3  # nothing to defer
    assert phases.deferred_rows(np.zeros(0, dtype=bool), 5).tolist() == []


def test_a_deferred_row_keeps_its_first_phase_place_among_the_re_scored_ones() -> None:
    chosen = np.array([4, 0, 2, 5])  # the first phase's best four, best first
    deferred = np.array([True, False, False, True])  # rows 4 and 5: being scored after the response
    phase = np.array([2, 1, 2, 1, 1, 1])  # 0 and 2 re-scored now
    filtered = np.zeros(6, dtype=bool)
    order = phases.phased_order(np.array([0.2, 0.1, 0.9, 0.3, 0.8, 0.7]), filtered, phase)
    assert order.tolist() == [2, 0, 4, 5, 3, 1]  # the boundary rule alone: every phase 2 first
    # row 4 was the first phase's best: first; row 5 its fourth: fourth; the re-scored keep their own order
    assert phases.keep_deferred_in_place(order, chosen, deferred, filtered).tolist() == [4, 2, 0, 5, 3, 1]
    # a re-scored row the floor filters leaves the block: a slot past its end is the end
    filtered = np.array([True, False, False, False, False, False])
    order = phases.phased_order(np.array([0.2, 0.1, 0.9, 0.3, 0.8, 0.7]), filtered, phase)
    assert phases.keep_deferred_in_place(order, chosen, deferred, filtered).tolist() == [4, 2, 5, 3, 1, 0]
    assert phases.keep_deferred_in_place(order, chosen, np.zeros(4, dtype=bool), filtered).tolist() == order.tolist()
