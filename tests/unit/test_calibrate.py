import numpy as np

from training.evaluate.calibrate import youden_threshold


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
