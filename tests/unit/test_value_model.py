"""The unified value model: weights move the order, the floor puts filtered items last."""

from __future__ import annotations

import numpy as np
import pytest

from service.errors import InvalidInput, UnknownProfile
from service.pipelines import resolve_weights
from service.ranking.value_model import rank_by_value, value_scores
from service.settings import Settings, WeightProfile

# item 0: very relevant, rarely clicked; item 1: partly relevant, often clicked; item 2: irrelevant, clickbait
EXPECTED = np.array([1.9, 1.0, 0.2])
P_PARTIAL = np.array([0.99, 0.8, 0.1])
CTR = np.array([0.05, 0.6, 0.9])
CVR = np.array([0.02, 0.3, 0.5])


def order(weights: WeightProfile, floor: float | None = None) -> list[int]:
    return rank_by_value(expected_relevance=EXPECTED, p_partial_or_better=P_PARTIAL, ctr=CTR, cvr=CVR,
                         weights=weights, min_relevance=floor).order.tolist()


def test_relevance_only_orders_by_expected_relevance() -> None:
    assert order(WeightProfile(relevance=1, ctr=0, cvr=0)) == [0, 1, 2]


def test_engagement_weights_can_overturn_relevance() -> None:
    assert order(WeightProfile(relevance=0.1, ctr=1, cvr=1))[0] == 2


def test_scores_are_weighted_means_in_unit_interval() -> None:
    weights = WeightProfile(relevance=2, ctr=1, cvr=1)
    scores = value_scores(expected_relevance=EXPECTED, ctr=CTR, cvr=CVR, weights=weights)
    np.testing.assert_allclose(scores, (2 * EXPECTED / 2 + CTR + CVR) / 4)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_floor_puts_filtered_items_last_even_with_top_score() -> None:
    result = rank_by_value(expected_relevance=EXPECTED, p_partial_or_better=P_PARTIAL, ctr=CTR, cvr=CVR,
                           weights=WeightProfile(relevance=0.1, ctr=1, cvr=1), min_relevance=0.5)
    assert result.order.tolist()[-1] == 2 and result.filtered.tolist() == [False, False, True]
    assert result.score[2] == result.score.max()  # the score is kept; only the position changes


def test_ties_keep_input_order() -> None:
    same = np.ones(4)
    result = rank_by_value(expected_relevance=same, p_partial_or_better=same, ctr=same, cvr=same,
                           weights=WeightProfile())
    assert result.order.tolist() == [0, 1, 2, 3]


def test_request_weights_override_the_profile_field_by_field() -> None:
    settings = Settings()
    merged = resolve_weights(settings, profile="engagement", overrides={"relevance": 5.0})
    assert merged == WeightProfile(relevance=5.0, ctr=settings.profiles["engagement"].ctr,
                                   cvr=settings.profiles["engagement"].cvr)
    assert resolve_weights(settings, profile=None, overrides=None) == settings.profiles["default"]


def test_unknown_profile_and_all_zero_weights_are_refused() -> None:
    settings = Settings()
    with pytest.raises(UnknownProfile, match="known profiles"):
        resolve_weights(settings, profile="nope", overrides=None)
    with pytest.raises(InvalidInput, match="weight"):
        resolve_weights(settings, profile="relevance", overrides={"relevance": 0.0})
