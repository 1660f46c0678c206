"""Ordinal relevance maths on the shared 3-level scale (0 irrelevant, 1 partial, 2 exact).

The ranker emits two *cumulative* logits per pair, for P(y≥1) and P(y≥2), from one score
and two ordered thresholds (rank-consistent, as in CORAL), so P(y≥2) ≤ P(y≥1) holds by
construction; ``clip`` below only guards float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LABELS = ("irrelevant", "partial", "exact")
RATING_CUTS = (1.835, 2.5)  # data/README.md: the midpoints between the rating steps


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


@dataclass(frozen=True)
class OrdinalScores:
    """Per-pair relevance read-outs derived from the two cumulative probabilities."""

    p_partial_or_better: np.ndarray  # P(y ≥ 1)
    p_exact: np.ndarray  # P(y ≥ 2)
    label_cuts: tuple[float, float] = RATING_CUTS  # on the expected rating; a model's own from validation

    @property
    def class_probs(self) -> np.ndarray:
        """[n, 3] probabilities of irrelevant / partial / exact."""
        p1, p2 = self.p_partial_or_better, self.p_exact
        return np.stack([1.0 - p1, p1 - p2, p2], axis=1)

    @property
    def expected(self) -> np.ndarray:
        """E[y] in [0, 2] = P(y≥1) + P(y≥2)."""
        return self.p_partial_or_better + self.p_exact

    @property
    def raw_relevance(self) -> np.ndarray:
        """Expected rating on the public 1–3 scale (for RMSE against the human mean)."""
        return 1.0 + self.expected

    @property
    def label_index(self) -> np.ndarray:
        """Cut points on the expected rating: the human rule by default, or the ones ``shoprank calibrate``
        fitted on the validation split for this model version (its card's ``calibration.label_cuts``).

        The expected rating was chosen on the validation split over the most probable class (3-level
        accuracy 0.570 vs 0.499, macro-F1 0.457 vs 0.341 for ranker:1): soft cumulative targets make the
        middle class rarely the argmax even when the expected rating sits squarely in it.
        """
        return label_from_raw(self.raw_relevance, cuts=self.label_cuts)

    @property
    def labels(self) -> list[str]:
        return [LABELS[i] for i in self.label_index]

    @classmethod
    def concatenate(cls, parts: Sequence[OrdinalScores]) -> OrdinalScores:
        """Scores of consecutive batches of pairs from one model, as one (its label cuts kept)."""
        cuts = {part.label_cuts for part in parts}
        if len(cuts) != 1:
            raise ValueError(f"cannot join scores labelled with different cut points: {sorted(cuts)}")
        return cls(np.concatenate([p.p_partial_or_better for p in parts]), np.concatenate([p.p_exact for p in parts]),
                   label_cuts=cuts.pop())


def from_cumulative_logits(logits: np.ndarray, *, label_cuts=None) -> OrdinalScores:
    """[n, 2] cumulative logits → ordered cumulative probabilities (``label_cuts``: see ``label_index``)."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1, 2)
    p1 = sigmoid(logits[:, 0])
    p2 = np.minimum(sigmoid(logits[:, 1]), p1)
    cuts = RATING_CUTS if label_cuts is None else (float(label_cuts[0]), float(label_cuts[1]))
    return OrdinalScores(p_partial_or_better=p1, p_exact=p2, label_cuts=cuts)


def label_from_raw(relevance: np.ndarray, *, cuts: tuple[float, float] = RATING_CUTS) -> np.ndarray:
    """The project's 3-level rule on the human mean (data README): <1.835 → 0, <2.5 → 1, else 2."""
    r = np.asarray(relevance, dtype=np.float64)
    return np.where(r < cuts[0], 0, np.where(r < cuts[1], 1, 2)).astype(np.int64)


def cumulative_targets(relevance: np.ndarray) -> np.ndarray:
    """Soft cumulative targets whose expectation equals the human mean: [clip(r-1), clip(r-2)]."""
    r = np.asarray(relevance, dtype=np.float64)
    return np.stack([np.clip(r - 1.0, 0.0, 1.0), np.clip(r - 2.0, 0.0, 1.0)], axis=1)
