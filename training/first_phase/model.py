"""The first-phase scorer: an MLP over two embeddings and a task, predicting the ranker's four logits.

Input features are the classic pair interactions of two L2-normalised vectors — ``[l, r, l⊙r, |l−r|]``
plus their cosine — concatenated with a learned task embedding (``task_id`` indexes the ranker card's
``tasks``). Outputs keep the ranker's names and meaning: ``relevance_logits`` [B, 2] (cumulative logits
of P(y≥1), P(y≥2)) and ``engagement_logits`` [B, 2] (CTR, CVR), so ``from_cumulative_logits`` and the
engagement priors read them unchanged. A few hundred thousand multiply-adds per pair: ~µs on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class FirstPhaseShape:
    dim: int = 384
    tasks: int = 3
    task_dim: int = 16
    hidden: tuple[int, ...] = (256,)
    dropout: float = 0.1


class FirstPhaseModel(nn.Module):
    """(query_embedding, item_embedding, task_id) → (relevance_logits, engagement_logits)."""

    def __init__(self, shape: FirstPhaseShape = FirstPhaseShape()) -> None:
        super().__init__()
        self.shape = shape
        self.task_embedding = nn.Embedding(shape.tasks, shape.task_dim)
        layers: list[nn.Module] = []
        width = 4 * shape.dim + 1 + shape.task_dim
        for hidden in shape.hidden:
            layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(shape.dropout)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 4)

    @staticmethod
    def features(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        product = left * right
        cosine = product.sum(dim=-1, keepdim=True)
        return torch.cat([left, right, product, (left - right).abs(), cosine], dim=-1)

    def forward(self, query_embedding: torch.Tensor, item_embedding: torch.Tensor,
                task_id: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.features(query_embedding, item_embedding), self.task_embedding(task_id)], dim=-1)
        out = self.head(self.body(x))
        return out[:, :2], out[:, 2:]


def distillation_loss(relevance: torch.Tensor, engagement: torch.Tensor, target_relevance: torch.Tensor,
                      target_engagement: torch.Tensor, *, kind: str = "mse", engagement_weight: float = 0.5) -> torch.Tensor:
    """Distance to the teacher's logits: ``mse`` on the logits, or ``bce`` with the teacher's probabilities
    as soft targets (weights a logit error by how much it moves the probability)."""
    if kind == "mse":
        rel, eng = F.mse_loss(relevance, target_relevance), F.mse_loss(engagement, target_engagement)
    elif kind == "bce":
        rel = F.binary_cross_entropy_with_logits(relevance, torch.sigmoid(target_relevance))
        eng = F.binary_cross_entropy_with_logits(engagement, torch.sigmoid(target_engagement))
    else:
        raise ValueError(f"unknown distillation loss {kind!r}; expected 'mse' or 'bce'")
    return rel + engagement_weight * eng
