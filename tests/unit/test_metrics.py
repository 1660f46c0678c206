import numpy as np
import pandas as pd
import pytest

from training.evaluate.metrics import accuracy, macro_f1, ndcg_at_k, rmse


def _frame(relevance, scores):
    return pd.DataFrame({"query": ["q"] * len(relevance), "relevance": relevance, "s": scores})


def test_ndcg_is_one_for_the_ideal_order_and_lower_for_a_worse_one():
    rel = [3.0, 2.33, 1.0]
    assert ndcg_at_k(_frame(rel, [3, 2, 1]), "s") == pytest.approx(1.0)
    worse = ndcg_at_k(_frame(rel, [1, 2, 3]), "s")
    # gains 2^(r-1)-1 = 3, 1.52, 0 → worst DCG = 0 + 1.52/log2(3) + 3/2
    expected = (1.5198 / np.log2(3) + 3 / 2) / (3 + 1.5198 / np.log2(3))
    assert worse == pytest.approx(expected, rel=1e-3)


def test_ndcg_skips_queries_with_fewer_than_two_candidates():
    frame = pd.concat([_frame([3.0, 1.0], [0, 1]), _frame([3.0], [1]).assign(query="single")])
    assert ndcg_at_k(frame, "s") == pytest.approx(ndcg_at_k(_frame([3.0, 1.0], [0, 1]), "s"))


def test_regression_and_classification_metrics():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert accuracy([0, 1, 2], [0, 2, 2]) == pytest.approx(2 / 3)
    assert macro_f1([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)
