"""The engagement prior: CTR/CVR heads recalibrated with the item's popularity, fitted on simulated engagement."""

import numpy as np
import pandas as pd
import pytest

from service.ranking.engagement_prior import (
    EngagementPrior,
    engagement_priors,
    logit,
    popularity_of,
    with_priors,
)
from training.calibrate import fit_engagement_prior
from training.engagement import simulate_engagement, split_engagement


def test_prior_is_a_logistic_of_the_head_logit_and_popularity():
    prior = EngagementPrior(bias=-0.5, head=0.8, popularity=0.6)
    head, popularity = np.array([0.1, 0.5, 0.9]), np.array([0.0, 1.0, -2.0])
    z = -0.5 + 0.8 * np.log(head / (1 - head)) + 0.6 * popularity
    assert np.allclose(prior.apply(head, popularity), 1 / (1 + np.exp(-z)))
    assert np.allclose(EngagementPrior(0.0, 1.0, 0.0).apply(head, popularity), head)  # the identity fit


def test_card_without_a_fit_leaves_the_heads_and_ignores_popularity():
    ctr, cvr = np.array([0.2, 0.7]), np.array([0.1, 0.3])
    same = with_priors({"calibration": {"min_relevance": 0.7}}, ctr, cvr, np.array([5.0, -5.0]))
    assert np.array_equal(same[0], ctr) and np.array_equal(same[1], cvr)
    card = {"calibration": {"engagement": {"ctr": {"bias": 0.0, "head": 1.0, "popularity": 1.0, "pairs": 3}}}}
    assert set(engagement_priors(card)) == {"ctr"}
    moved_ctr, kept_cvr = with_priors(card, ctr, cvr, np.array([1.0, 0.0]))
    assert moved_ctr[0] > ctr[0] and moved_ctr[1] == pytest.approx(ctr[1]) and np.array_equal(kept_cvr, cvr)


def test_missing_popularity_is_an_average_item():
    assert popularity_of([{"popularity": 1.5}, {}, {"price": 3.0}]).tolist() == [1.5, 0.0, 0.0]


def test_fit_recovers_the_coefficients_of_soft_targets():
    rng = np.random.default_rng(0)
    head, popularity = rng.uniform(0.05, 0.95, 4000), rng.normal(size=4000)
    target = 1 / (1 + np.exp(-(0.3 + 1.2 * logit(head) + 0.7 * popularity)))
    fit = fit_engagement_prior(head, popularity, target)
    assert fit["bias"] == pytest.approx(0.3, abs=0.02) and fit["head"] == pytest.approx(1.2, abs=0.02)
    assert fit["popularity"] == pytest.approx(0.7, abs=0.02)
    assert fit["validation_r_with_popularity"] > fit["validation_r_head"]


def test_split_engagement_gives_a_product_one_popularity_across_splits():
    pairs = pd.DataFrame({"query": ["q1", "q1", "q2", "q3", "q3"], "item_id": ["a", "b", "a", "b", "c"],
                          "title": list("ABABC"), "relevance": [3.0, 1.0, 2.0, 2.5, 1.5],
                          "split": ["train", "train", "validation", "validation", "test"]})
    split_rows = {s: pairs[pairs["split"] == s].reset_index(drop=True) for s in ("train", "validation")}
    validation = split_engagement(pairs, split_rows["validation"])
    assert validation["query"].tolist() == ["q2", "q3"] and validation["item_id"].tolist() == ["a", "b"]
    everything = simulate_engagement(pairs).set_index(["query", "item_id"])["popularity"]
    train = split_engagement(pairs, split_rows["train"]).set_index("item_id")["popularity"]
    assert validation.set_index("item_id")["popularity"].to_dict() == train.to_dict()
    assert everything.loc[("q3", "b")] == train["b"]
