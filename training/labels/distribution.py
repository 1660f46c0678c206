"""Label-distribution report and the two ways to move teacher labels to a target distribution.

LLM judges are often calibrated to a different prior than the human labels a model is judged on
(the papers warn that the student and ranker follow the teacher's label distribution). Two pure
functions correct for it:

* ``reweight_to_target`` — prior shift on SOFT labels: multiply each class column by a weight
  and renormalise rows, with weights found by iterative proportional fitting so the mean class
  probabilities equal the target (the EM prior adjustment of Saerens et al., 2002);
* ``rethreshold_to_target`` — HARD labels from a score by quantile cut points, so the label
  shares equal the target exactly (up to ties).
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES = ("irrelevant", "partial", "exact")


def label_distribution(labels_or_probs: np.ndarray) -> dict[str, float]:
    """Shares per class, from hard labels [n] or soft class probabilities [n, 3]."""
    values = np.asarray(labels_or_probs)
    if values.ndim == 2:
        shares = values.mean(axis=0)
    else:
        shares = np.bincount(values.astype(np.int64), minlength=3)[:3] / max(len(values), 1)
    return {name: float(share) for name, share in zip(CLASS_NAMES, shares)}


def _target(target) -> np.ndarray:
    t = np.asarray(target, dtype=np.float64)
    if t.shape != (3,) or (t < 0).any() or t.sum() <= 0:
        raise ValueError(f"target must be 3 non-negative shares, got {target!r}")
    return t / t.sum()


def reweight_to_target(probs: np.ndarray, *, target, iterations: int = 200, tol: float = 1e-9) -> np.ndarray:
    """Soft labels [n, 3] → prior-shifted soft labels whose column means equal ``target``.

    p'_ik = w_k p_ik / Σ_j w_j p_ij; each pass sets w_k ← w_k · target_k / mean_i p'_ik. Rows keep
    their ranking of classes relative to each other (a single per-class factor), so the judge's
    pair-level evidence is kept and only the prior moves.
    """
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)
    t = _target(target)
    weights = np.ones(3)
    for _ in range(iterations):
        adjusted = p * weights
        adjusted /= adjusted.sum(axis=1, keepdims=True)
        mean = adjusted.mean(axis=0)
        if np.abs(mean - t).max() < tol:
            break
        weights *= t / np.maximum(mean, 1e-12)
    adjusted = p * weights
    return adjusted / adjusted.sum(axis=1, keepdims=True)


def rethreshold_to_target(scores: np.ndarray, *, target) -> tuple[np.ndarray, tuple[float, float]]:
    """Scores [n] (e.g. expected relevance) → hard labels with shares ``target``, and the two cut points.

    The lowest ``target[0]`` share becomes irrelevant, the next ``target[1]`` partial, the rest
    exact; cut points are the scores' quantiles, so they can be applied to new pairs as is.
    """
    s = np.asarray(scores, dtype=np.float64)
    t = _target(target)
    low, high = np.quantile(s, [t[0], t[0] + t[1]]) if len(s) else (0.0, 0.0)
    labels = np.where(s < low, 0, np.where(s < high, 1, 2)).astype(np.int64)
    return labels, (float(low), float(high))
