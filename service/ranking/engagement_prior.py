"""Engagement with an item prior: the ranker's text-only CTR/CVR heads, shifted by the item's popularity.

The heads read only the query and the title, so they cannot know that one product is clicked more than
another of the same relevance. A caller may send ``features.popularity`` with each candidate: the
item's popularity as a log-odds offset (0 = an average item, +1 = one standard deviation more engaging),
e.g. from its historical CTR. ``shoprank calibrate`` fits, on the validation split,

    p' = σ(bias + head · logit(p_head) + popularity · x_popularity)

for CTR and for CVR, and stores the coefficients in the ranker's card (``calibration.engagement``).
A candidate without the feature counts as an average item (0). Without a fit in the card, the heads are
used as they are and the feature is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from service.ranking.ordinal import sigmoid

POPULARITY_FEATURE = "popularity"


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class EngagementPrior:
    """Coefficients of one head's logistic recalibration with the popularity feature."""

    bias: float
    head: float
    popularity: float

    def apply(self, head_probability: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        return sigmoid(self.bias + self.head * logit(head_probability)
                       + self.popularity * np.asarray(popularity, dtype=np.float64))


def engagement_priors(card: Mapping) -> dict[str, EngagementPrior]:
    """``{"ctr": …, "cvr": …}`` from a ranker card's ``calibration.engagement`` section (empty when not fitted)."""
    fitted = card.get("calibration", {}).get("engagement", {})
    return {head: EngagementPrior(**{k: float(fitted[head][k]) for k in ("bias", "head", "popularity")})
            for head in ("ctr", "cvr") if head in fitted}


def popularity_of(features: Sequence[Mapping[str, float]]) -> np.ndarray:
    """Each candidate's popularity feature, 0 (an average item) where it is missing."""
    return np.array([float(f.get(POPULARITY_FEATURE, 0.0)) for f in features], dtype=np.float64)


def with_priors(card: Mapping, ctr: np.ndarray, cvr: np.ndarray, popularity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CTR and CVR after the card's fitted priors (unchanged heads where none is fitted)."""
    priors = engagement_priors(card)
    return (priors["ctr"].apply(ctr, popularity) if "ctr" in priors else np.asarray(ctr),
            priors["cvr"].apply(cvr, popularity) if "cvr" in priors else np.asarray(cvr))
