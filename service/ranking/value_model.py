"""The unified value model: one score from relevance and engagement heads, weights from the caller.

score = (w_rel · E[y]/2 + w_ctr · ctr + w_cvr · cvr) / (w_rel + w_ctr + w_cvr), every term
in [0, 1], so scores stay in [0, 1] and stay comparable across weight profiles. Items whose
P(y ≥ partial) is under the relevance floor are *filtered*: kept in the answer, marked, and
placed after every unfiltered item, so a floor never hides what the model thought.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.settings import WeightProfile


@dataclass(frozen=True)
class ValueModelResult:
    score: np.ndarray
    filtered: np.ndarray
    order: np.ndarray  # positions best first, filtered last


def value_scores(
    *,
    expected_relevance: np.ndarray,
    ctr: np.ndarray,
    cvr: np.ndarray,
    weights: WeightProfile,
) -> np.ndarray:
    total = weights.relevance + weights.ctr + weights.cvr
    rel = np.clip(np.asarray(expected_relevance, dtype=np.float64) / 2.0, 0.0, 1.0)
    return (weights.relevance * rel + weights.ctr * np.asarray(ctr) + weights.cvr * np.asarray(cvr)) / total


def rank_by_value(
    *,
    expected_relevance: np.ndarray,
    p_partial_or_better: np.ndarray,
    ctr: np.ndarray,
    cvr: np.ndarray,
    weights: WeightProfile,
    min_relevance: float | None = None,
) -> ValueModelResult:
    score = value_scores(expected_relevance=expected_relevance, ctr=ctr, cvr=cvr, weights=weights)
    if min_relevance is None:
        filtered = np.zeros(len(score), dtype=bool)
    else:
        filtered = np.asarray(p_partial_or_better) < min_relevance
    # lexsort: last key is primary → unfiltered first, then score descending, then input order
    order = np.lexsort((np.arange(len(score)), -score, filtered))
    return ValueModelResult(score=score, filtered=filtered, order=order)
