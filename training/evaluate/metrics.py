"""Metrics on grouped candidates.

NDCG@10 is written here by hand because the project's gain is 2^(r−1) − 1 on the *fractional* human
mean r ∈ [1, 3] (data/README.md), while ranx and ir-measures take integer judgements; recall over a
whole catalogue is in ``training/evaluate/retrieval.py`` (numpy, cross-checked against ranx there).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _dcg(gains: np.ndarray) -> float:
    return float(np.sum(gains / np.log2(np.arange(2, len(gains) + 2))))


def ndcg_at_k(frame: pd.DataFrame, score_column: str, *, k: int = 10, min_candidates: int = 2) -> float:
    """Mean NDCG@k over queries with ≥ ``min_candidates`` candidates; ties broken by input order."""
    values = []
    for _, group in frame.groupby("query", sort=False):
        if len(group) < min_candidates:
            continue
        gains = np.power(2.0, group["relevance"].to_numpy() - 1.0) - 1.0
        order = np.argsort(-group[score_column].to_numpy(), kind="stable")
        ideal = _dcg(np.sort(gains)[::-1][:k])
        values.append(_dcg(gains[order][:k]) / ideal if ideal > 0 else 1.0)
    return float(np.mean(values))


def rmse(predicted: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(target)) ** 2)))


def accuracy(predicted: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(target)))


def macro_f1(predicted: np.ndarray, target: np.ndarray, *, classes: int = 3) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(target, predicted, labels=list(range(classes)), average="macro", zero_division=0))


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation (e.g. student cosine vs ranker expected relevance: does the student agree)."""
    return float(np.corrcoef(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))[0, 1])
