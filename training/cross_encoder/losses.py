"""Ranker losses: soft cumulative BCE for the ordinal head, masked BCE for engagement heads."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def ordinal_loss(cumulative_logits: torch.Tensor, cumulative_targets: torch.Tensor) -> torch.Tensor:
    """BCE on P(y≥1), P(y≥2) against soft targets whose expectation is the human mean."""
    return F.binary_cross_entropy_with_logits(cumulative_logits, cumulative_targets)


def expected_rating(cumulative_logits: torch.Tensor) -> torch.Tensor:
    """1 + P(y≥1) + P(y≥2): the model's rating on the human 1–3 scale."""
    return 1.0 + torch.sigmoid(cumulative_logits).sum(1)


def expected_value_loss(cumulative_logits: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """MSE between the expected rating and the raw 1–3 mean (the RMSE the public task reports)."""
    return F.mse_loss(expected_rating(cumulative_logits), relevance)


def engagement_loss(logits: torch.Tensor, ctr: torch.Tensor, cvr: torch.Tensor, cvr_mask: torch.Tensor,
                    ctr_mask: torch.Tensor | None = None) -> torch.Tensor:
    """BCE on debiased simulated CTR where the row has engagement at all (``ctr_mask``: derived tasks have
    none, and must not teach the heads that their pairs never get clicked), and on CVR where the pair was
    clicked."""
    ctr_each = F.binary_cross_entropy_with_logits(logits[:, 0], ctr, reduction="none")
    if ctr_mask is None:
        ctr_loss = ctr_each.mean()
    else:
        ctr_loss = (ctr_each * ctr_mask).sum() / ctr_mask.sum().clamp(min=1.0)
    cvr_each = F.binary_cross_entropy_with_logits(logits[:, 1], cvr, reduction="none")
    cvr_loss = (cvr_each * cvr_mask).sum() / cvr_mask.sum().clamp(min=1.0)
    return ctr_loss + cvr_loss


def pairwise_rank_loss(cumulative_logits: torch.Tensor, relevance: torch.Tensor, groups: torch.Tensor,
                       *, scale: float = 4.0, min_gap: float = 0.1) -> torch.Tensor:
    """RankNet over the pairs of a batch that share a group (the same query, item or query of a task):
    logistic loss on the difference of expected ratings, each pair weighted by its rating gap.

    NDCG only sees the order within a query; the pointwise losses above never compare two candidates.
    ``scale`` turns a one-step rating difference into a logit of 4; pairs closer than ``min_gap`` (one
    rater of three moving by one step is 1/3) carry no order. Hand-written: torch has no grouped RankNet.
    """
    expected = expected_rating(cumulative_logits)
    gap = relevance[:, None] - relevance[None, :]
    ordered = (groups[:, None] == groups[None, :]) & (gap > min_gap)
    if not ordered.any():
        return expected.sum() * 0.0  # keeps the graph: a batch without ordered pairs adds nothing
    margins = scale * (expected[:, None] - expected[None, :])
    weights = gap * ordered
    return (F.softplus(-margins) * weights).sum() / weights.sum()
