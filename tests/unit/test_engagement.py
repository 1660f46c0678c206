"""The simulated click model must have the properties the data README promises."""

import numpy as np
import pandas as pd

from training.engagement import ClickModel, simulate_engagement


def _pairs(n_queries=300, per_query=6, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(f"q{q}", f"i{rng.integers(0, 500)}", float(rng.choice([1.0, 1.67, 2.33, 3.0])))
            for q in range(n_queries) for _ in range(per_query)]
    return pd.DataFrame(rows, columns=["query", "item_id", "relevance"])


def test_simulation_is_deterministic_for_a_seed():
    a, b = simulate_engagement(_pairs()), simulate_engagement(_pairs())
    assert np.array_equal(a["clicks"], b["clicks"])


def test_ctr_grows_with_relevance_and_popularity_is_independent_of_relevance():
    sim = simulate_engagement(_pairs())
    by_rel = sim.groupby("relevance")["ctr"].mean()
    assert by_rel.is_monotonic_increasing
    assert abs(np.corrcoef(sim["popularity"], sim["relevance"])[0, 1]) < 0.1
    assert np.corrcoef(sim["popularity"], sim["ctr"])[0, 1] > 0.2


def test_position_bias_is_corrected_in_the_ctr_label():
    strong = simulate_engagement(_pairs(), ClickModel(position_decay=2.0))
    none = simulate_engagement(_pairs(), ClickModel(position_decay=0.0))
    # debiased CTR estimates the same attractiveness whatever the examination curve
    assert abs(strong["ctr"].mean() - none["ctr"].mean()) < 0.05
    assert strong["clicks"].sum() < none["clicks"].sum()
