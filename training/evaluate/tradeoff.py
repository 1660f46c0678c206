"""Relevance–engagement trade-off of the unified value model (report section 7).

The ranker's heads (expected relevance, CTR, CVR) are combined by ``service.ranking.value_model``
with an engagement weight w ∈ [0, 1]: relevance weight 1 − w, CTR and CVR weights w / 2 each. For
each w the test candidates of every query are re-ordered and measured twice:
  * NDCG@10 against the human relevance (the project's gain, ``metrics.ndcg_at_k``);
  * the SIMULATED engagement of the top 10 — the click model's debiased CTR (``training/engagement.py``,
    the ground truth the engagement heads were trained on), as a plain mean over the top 10 and as
    a mean weighted by the click model's examination probability 1 / (1 + rank) ** decay, because most
    test queries have fewer than 10 candidates, so the plain top-10 mean barely moves with the order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from service.ranking.value_model import value_scores
from service.settings import WeightProfile
from training.engagement import ClickModel
from training.evaluate.metrics import ndcg_at_k


def engagement_weights(w: float) -> WeightProfile:
    """Weight w on engagement (split evenly between CTR and CVR), 1 − w on relevance."""
    return WeightProfile(relevance=1.0 - w, ctr=w / 2.0, cvr=w / 2.0)


def engagement_share(weights: WeightProfile) -> float:
    """Where a named profile sits on the w axis: (w_ctr + w_cvr) / Σ w."""
    return (weights.ctr + weights.cvr) / (weights.relevance + weights.ctr + weights.cvr)


def engagement_at_k(frame: pd.DataFrame, score_column: str, engagement_column: str, *, k: int = 10,
                    min_candidates: int = 2, position_decay: float | None = None) -> float:
    """Mean over queries of the engagement of the top k by score (ties: input order, as ``ndcg_at_k``).

    ``position_decay`` None: plain mean of the top k; else each rank r (0-based) weighs 1 / (1 + r) ** decay.
    """
    values = []
    for _, group in frame.groupby("query", sort=False):
        if len(group) < min_candidates:
            continue
        order = np.argsort(-group[score_column].to_numpy(), kind="stable")[:k]
        engagement = group[engagement_column].to_numpy()[order]
        if position_decay is None:
            values.append(float(engagement.mean()))
        else:
            weight = 1.0 / (1.0 + np.arange(len(order))) ** position_decay
            values.append(float(weight @ engagement / weight.sum()))
    return float(np.mean(values))


def sweep(frame: pd.DataFrame, *, expected: np.ndarray, ctr: np.ndarray, cvr: np.ndarray,
          engagement_column: str = "sim_ctr", points: Sequence[float] = tuple(np.linspace(0.0, 1.0, 11)),
          k: int = 10, position_decay: float = ClickModel().position_decay) -> pd.DataFrame:
    """One row per engagement weight w: NDCG@k (human relevance) and simulated engagement of the top k.

    ``frame`` holds the candidates (``query``, ``relevance``, ``engagement_column``) in the order of the
    head arrays.
    """
    rows = []
    scored = frame[["query", "relevance", engagement_column]].copy()
    for w in points:
        scored["value"] = value_scores(expected_relevance=expected, ctr=ctr, cvr=cvr, weights=engagement_weights(float(w)))
        rows.append({
            "w": float(w),
            "ndcg10": ndcg_at_k(scored, "value", k=k),
            "engagement_mean": engagement_at_k(scored, "value", engagement_column, k=k),
            "engagement_weighted": engagement_at_k(scored, "value", engagement_column, k=k,
                                                   position_decay=position_decay),
        })
    return pd.DataFrame(rows)


def reference_point(frame: pd.DataFrame, score_column: str, *, engagement_column: str = "sim_ctr", k: int = 10,
                    position_decay: float = ClickModel().position_decay) -> dict:
    """NDCG@k and engagement of any other ordering (e.g. random, or the simulated CTR itself as an oracle)."""
    return {
        "ndcg10": ndcg_at_k(frame, score_column, k=k),
        "engagement_mean": engagement_at_k(frame, score_column, engagement_column, k=k),
        "engagement_weighted": engagement_at_k(frame, score_column, engagement_column, k=k,
                                               position_decay=position_decay),
    }
