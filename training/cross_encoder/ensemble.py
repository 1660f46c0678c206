"""Majority-vote ensemble over ranker variants (e.g. the prefix / multihead / mhp routings).

Following the Walmart unified-relevance paper, the ensemble's 3-level label is the label most
variants predict (each variant labelled by ``OrdinalScores.label_index``, the project's 3-level
rule on the expected rating); a tie (an even number of variants, or three-way with three) goes to
the tied class nearest the variants' MEAN expected rating (the soft vote). For ranking and RMSE the
ensemble uses the mean of the variants' cumulative probabilities, which keeps rank consistency
(P(y≥2) ≤ P(y≥1) holds for a mean of consistent pairs). Pure numpy; no model code here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.ranking.ordinal import OrdinalScores


@dataclass(frozen=True)
class EnsembleScores:
    labels: np.ndarray  # [n] majority-vote 3-level labels
    scores: OrdinalScores  # mean cumulative probabilities (for NDCG, RMSE)
    agreement: np.ndarray  # [n] share of variants that voted for the winning label


def majority_vote(labels: np.ndarray, *, tie_break: np.ndarray) -> np.ndarray:
    """labels [K, n] in {0, 1, 2} → [n] most-voted label; ties go to the highest ``tie_break`` [n, 3] score."""
    labels = np.asarray(labels, dtype=np.int64)
    votes = np.stack([(labels == c).sum(axis=0) for c in range(3)], axis=1)  # [n, 3]
    top = votes == votes.max(axis=1, keepdims=True)
    return np.where(top, np.asarray(tie_break, dtype=np.float64), -np.inf).argmax(axis=1)


def ensemble(variants: Sequence[OrdinalScores]) -> EnsembleScores:
    """Combine K variants' scores for the same n pairs."""
    if not variants:
        raise ValueError("an ensemble needs at least one variant")
    p1 = np.mean([v.p_partial_or_better for v in variants], axis=0)
    p2 = np.mean([v.p_exact for v in variants], axis=0)
    mean = OrdinalScores(p_partial_or_better=p1, p_exact=np.minimum(p2, p1))
    labels = np.stack([v.label_index for v in variants])
    nearness = -np.abs(np.arange(3)[None, :] - mean.expected[:, None])
    winner = majority_vote(labels, tie_break=nearness)
    return EnsembleScores(labels=winner, scores=mean, agreement=(labels == winner).mean(axis=0))
