"""Ordinal relevance maths: cumulative probabilities, expectation, labels and the 3-level rule."""

from __future__ import annotations

import numpy as np
import pytest

from service.ranking.ordinal import cumulative_targets, from_cumulative_logits, label_from_raw


def test_exact_never_more_likely_than_partial_or_better() -> None:
    logits = np.random.default_rng(0).normal(scale=4, size=(1_000, 2))  # includes unordered pairs
    scores = from_cumulative_logits(logits)
    assert (scores.p_exact <= scores.p_partial_or_better).all()
    probs = scores.class_probs
    assert (probs >= 0).all() and np.allclose(probs.sum(axis=1), 1.0)


def test_expected_is_sum_of_cumulative_probabilities() -> None:
    scores = from_cumulative_logits(np.array([[0.0, 0.0], [10.0, 10.0], [-10.0, -10.0], [2.0, -1.0]]))
    np.testing.assert_allclose(scores.expected, scores.p_partial_or_better + scores.p_exact)
    np.testing.assert_allclose(scores.expected[:3], [1.0, 2.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(scores.raw_relevance, 1.0 + scores.expected)
    assert scores.labels[1:3] == ["exact", "irrelevant"]


def test_label_follows_the_three_level_rule_on_the_expected_rating() -> None:
    # ratings 2.0 → partial, 2.61 → exact, 1.67 → irrelevant; the last one's most probable class is
    # partial (0.58), which is why the rule, not the argmax, names the label
    scores = from_cumulative_logits(np.array([[3.0, -3.0], [2.0, 1.0], [0.5, -3.0]]))
    assert scores.labels == ["partial", "exact", "irrelevant"]


@pytest.mark.parametrize(("raw", "label"), [
    (1.0, 0), (1.33, 0), (1.75, 0), (1.8349, 0), (1.835, 1), (2.0, 1), (2.33, 1), (2.4999, 1), (2.5, 2), (3.0, 2)])
def test_three_level_rule_at_its_boundaries(raw: float, label: int) -> None:
    assert label_from_raw(np.array([raw]))[0] == label


def test_cumulative_targets_keep_the_human_mean() -> None:
    raw = np.array([1.0, 1.67, 2.0, 2.33, 3.0])
    targets = cumulative_targets(raw)
    np.testing.assert_allclose(1.0 + targets.sum(axis=1), raw)
    assert (targets[:, 1] <= targets[:, 0]).all()
