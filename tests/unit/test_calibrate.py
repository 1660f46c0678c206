import numpy as np
import pytest

from training.calibrate import youden_threshold


def test_youden_threshold_separates_two_clean_groups():
    p = np.array([0.2, 0.3, 0.35, 0.8, 0.9, 0.95])
    relevant = np.array([False, False, False, True, True, True])
    threshold, j = youden_threshold(p, relevant)
    assert 0.35 < threshold <= 0.8 and j == 1.0


def test_youden_threshold_trades_recall_for_fewer_false_positives():
    rng = np.random.default_rng(0)
    relevant = rng.random(2000) < 0.8
    p = np.clip(np.where(relevant, 0.75, 0.55) + rng.normal(0, 0.1, 2000), 0, 1)
    threshold, _ = youden_threshold(p, relevant)
    assert 0.6 < threshold < 0.7  # between the two group means, not at the 0.5 default


def test_accuracy_cuts_recover_the_cuts_of_shrunk_predictions():
    """A model that shrinks ratings toward the mean needs cuts closer together than the human 1.835 / 2.5."""
    from service.ranking.ordinal import label_from_raw
    from training.calibrate import accuracy_cuts

    rng = np.random.default_rng(1)
    human = rng.uniform(1.0, 3.0, 3000)
    label = label_from_raw(human)
    shrunk = 2.3 + 0.5 * (human - 2.3)  # monotone, so some pair of cuts labels every pair right
    low, high, acc = accuracy_cuts(shrunk, label)
    assert acc > 0.99 and abs(low - (2.3 + 0.5 * (1.835 - 2.3))) <= 0.011 and abs(high - 2.4) <= 0.011
    assert (label_from_raw(shrunk) == label).mean() < 0.9  # the human rule mislabels them


def test_served_scores_label_with_the_cards_cuts():
    from service.ranking.ordinal import OrdinalScores, from_cumulative_logits

    logits = np.array([[0.0, -1.0], [2.0, -0.2]])  # expected ratings ≈ 1.77 and 2.33
    assert from_cumulative_logits(logits).label_index.tolist() == [0, 1]
    assert from_cumulative_logits(logits, label_cuts=[1.7, 2.3]).label_index.tolist() == [1, 2]
    joined = OrdinalScores.concatenate([from_cumulative_logits(logits[:1], label_cuts=[1.7, 2.3]),
                                        from_cumulative_logits(logits[1:], label_cuts=[1.7, 2.3])])
    assert joined.label_index.tolist() == [1, 2]  # chunked scoring (the report) keeps the card's cuts
    with pytest.raises(ValueError, match="different cut points"):
        OrdinalScores.concatenate([from_cumulative_logits(logits), from_cumulative_logits(logits, label_cuts=[1.7, 2.3])])
