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
    prefix = scores([0.9, 0.8, 0.2], [0.8, 0.1, 0.1])  # labels 2, 1, 0
    multihead = scores([0.9, 0.9, 0.6], [0.6, 0.7, 0.1])  # labels 2, 2, 1
    mhp = scores([0.3, 0.9, 0.4], [0.2, 0.2, 0.1])  # labels 0, 1, 0
    result = ensemble([prefix, multihead, mhp])
    assert result.labels.tolist() == [2, 1, 0]
    np.testing.assert_allclose(result.agreement, [2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(result.scores.p_partial_or_better, [0.7, 2.6 / 3, 0.4])
    assert (result.scores.p_exact <= result.scores.p_partial_or_better).all()
    np.testing.assert_allclose(result.scores.raw_relevance, 1 + np.array([0.7 + 1.6 / 3, 2.6 / 3 + 1.0 / 3, 0.5]))


def test_single_variant_is_itself_and_empty_is_refused():
    one = scores([0.9, 0.2], [0.7, 0.1])
    result = ensemble([one])
    assert result.labels.tolist() == one.label_index.tolist() and (result.agreement == 1).all()
    with pytest.raises(ValueError):
        ensemble([])
