"""Majority-vote ensemble over routing variants: votes, soft tie-breaks, rank-consistent means."""

from __future__ import annotations

import numpy as np
import pytest

from service.ranking.ordinal import OrdinalScores
from training.cross_encoder.ensemble import ensemble, majority_vote


def scores(p1, p2) -> OrdinalScores:
    return OrdinalScores(p_partial_or_better=np.array(p1, float), p_exact=np.array(p2, float))


def test_majority_wins_and_ties_go_to_the_soft_vote():
    labels = np.array([[2, 0, 1, 0], [2, 1, 1, 2], [0, 1, 2, 1]])
    tie_break = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.2, 0.3, 0.5]])
    assert majority_vote(labels, tie_break=tie_break).tolist() == [2, 1, 1, 2]  # last column: three-way tie
    assert majority_vote(labels[:2], tie_break=tie_break).tolist() == [2, 0, 1, 2]  # 1-1 ties: soft vote


def test_ensemble_of_three_routings():
    # each variant is labelled by the 3-level rule on its expected rating 1 + P(y≥1) + P(y≥2)
    prefix = scores([0.9, 0.8, 0.2], [0.8, 0.1, 0.1])  # ratings 2.7, 1.9, 1.3 → labels 2, 1, 0
    multihead = scores([0.9, 0.9, 0.6], [0.6, 0.7, 0.1])  # ratings 2.5, 2.6, 1.7 → labels 2, 2, 0
    mhp = scores([0.3, 0.9, 0.4], [0.2, 0.2, 0.1])  # ratings 1.5, 2.1, 1.5 → labels 0, 1, 0
    assert [v.label_index.tolist() for v in (prefix, multihead, mhp)] == [[2, 1, 0], [2, 2, 0], [0, 1, 0]]
    result = ensemble([prefix, multihead, mhp])
    assert result.labels.tolist() == [2, 1, 0]
    np.testing.assert_allclose(result.agreement, [2 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(result.scores.p_partial_or_better, [0.7, 2.6 / 3, 0.4])
    assert (result.scores.p_exact <= result.scores.p_partial_or_better).all()
    np.testing.assert_allclose(result.scores.raw_relevance, 1 + np.array([0.7 + 1.6 / 3, 2.6 / 3 + 1.0 / 3, 0.5]))


def test_two_way_tie_goes_to_the_class_nearest_the_mean_expected_rating():
    high = scores([0.95, 0.9], [0.9, 0.6])  # ratings 2.85, 2.5 → exact, exact
    low = scores([0.5, 0.1], [0.1, 0.05])  # ratings 1.6, 1.15 → irrelevant, irrelevant
    result = ensemble([high, low])  # mean expected (0–2) 1.225 and 0.825; both columns tie {0, 2}
    assert result.labels.tolist() == [2, 0]  # 1.225 is nearer 2, 0.825 nearer 0
    np.testing.assert_allclose(result.agreement, [0.5, 0.5])


def test_single_variant_is_itself_and_empty_is_refused():
    one = scores([0.9, 0.2], [0.7, 0.1])
    result = ensemble([one])
    assert result.labels.tolist() == one.label_index.tolist() and (result.agreement == 1).all()
    with pytest.raises(ValueError):
        ensemble([])
