"""Simulated engagement: public data has no clicks, so CTR/CVR labels come from a click model.

SIMULATED, fixed seed, and every figure that uses it says so. The model has the three
parts the data README asks for:
  * position bias — each query's candidates are shown in a random order in ``sessions``
    sessions; a result at rank r is examined with probability 1 / (1 + r) ** ``position_decay``;
  * popularity bias independent of relevance — each product gets a popularity logit
    ~ N(0, 1) drawn from the seed;
  * relevance-dependent attractiveness — P(click | examined) = σ(a0 + a_rel·(rel − 2) + a_pop·pop).
Conversions happen after a click with P = σ(c0 + c_rel·(rel − 2) + c_pop·pop).
Labels are position-debiased: CTR = clicks / Σ examination probabilities (inverse propensity,
clipped to [0, 1]); CVR = conversions / clicks where there was a click (else masked).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ClickModel:
    seed: int = 2016
    sessions: int = 30
    position_decay: float = 0.8
    attract_bias: float = -1.0
    attract_relevance: float = 1.8
    attract_popularity: float = 0.7
    convert_bias: float = -1.5
    convert_relevance: float = 1.5
    convert_popularity: float = 0.4


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def popularity_logits(item_ids: pd.Series, *, seed: int) -> pd.Series:
    """One N(0,1) popularity logit per distinct item, independent of relevance."""
    unique = np.sort(item_ids.unique())
    rng = np.random.default_rng(seed)
    return pd.Series(rng.standard_normal(len(unique)), index=unique)


def simulate_engagement(pairs: pd.DataFrame, model: ClickModel = ClickModel()) -> pd.DataFrame:
    """Add ``popularity``, ``clicks``, ``ctr``, ``cvr`` and ``cvr_mask`` columns to (query, item_id, relevance) rows."""
    rng = np.random.default_rng(model.seed + 1)
    pop = popularity_logits(pairs["item_id"], seed=model.seed).reindex(pairs["item_id"]).to_numpy()
    rel = pairs["relevance"].to_numpy(dtype=np.float64)
    attract = _sigmoid(model.attract_bias + model.attract_relevance * (rel - 2.0) + model.attract_popularity * pop)
    convert = _sigmoid(model.convert_bias + model.convert_relevance * (rel - 2.0) + model.convert_popularity * pop)

    clicks = np.zeros(len(pairs))
    propensity = np.zeros(len(pairs))
    for positions in pairs.groupby("query", sort=False).indices.values():
        n = len(positions)
        for _ in range(model.sessions):
            shown = rng.permutation(n)
            examine = 1.0 / (1.0 + np.arange(n)) ** model.position_decay
            idx = positions[shown]
            propensity[idx] += examine
            clicks[idx] += rng.random(n) < examine * attract[idx]
    conversions = rng.binomial(clicks.astype(np.int64), convert)
    out = pairs.copy()
    out["popularity"] = pop
    out["clicks"] = clicks
    out["ctr"] = np.clip(clicks / np.maximum(propensity, 1e-9), 0.0, 1.0)
    out["cvr"] = np.where(clicks > 0, conversions / np.maximum(clicks, 1), 0.0)
    out["cvr_mask"] = (clicks > 0).astype(np.float64)
    return out


def split_engagement(pairs: pd.DataFrame, frame: pd.DataFrame, model: ClickModel = ClickModel()) -> pd.DataFrame:
    """The click model run once over every labelled pair, then cut to ``frame``'s rows, in its order.

    ``frame`` is ``split_frame(pairs, split)``, possibly cut to some of its queries. Simulating all splits
    together gives each product ONE popularity, as a real item has, so a popularity fitted on validation
    means the same thing on test. (``simulate_engagement`` on a single split draws popularity over that
    split's products only.)"""
    simulated = simulate_engagement(pairs, model)
    rows = simulated[simulated["split"].isin(set(frame["split"])) & simulated["query"].isin(set(frame["query"]))]
    rows = rows.reset_index(drop=True)
    if not (rows["item_id"].to_numpy() == frame["item_id"].to_numpy()).all():
        raise RuntimeError("simulated engagement rows are not in the frame's order")
    return rows
