"""Unified ranker: MiniLM over ``[CLS] left [SEP] right [SEP]`` → ordinal + engagement heads.

Task routing (``routing``):
  * ``prefix``    — one head; the task is a text token prepended to the left text (client side);
  * ``multihead`` — one ordinal head per task over the shared encoder; ``task_id`` is a model input;
  * ``mhp``       — shared bottom layers, per-task private copies of the top ``private_layers``
                    transformer layers and one ordinal head per task (routing.py); ``task_id`` input.
The ordinal head is rank-consistent (CORAL-style): one score s and thresholds θ1 ≤ θ2 give
cumulative logits [s − θ1, s − θ2], so P(y≥2) ≤ P(y≥1) always.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel

from training.cross_encoder.routing import PrivateTopLayers
from training.names import ROUTINGS


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class OrdinalHead(nn.Module):
    """Per-task score + two ordered thresholds → [n, 2] cumulative logits."""

    def __init__(self, hidden: int, n_tasks: int) -> None:
        super().__init__()
        self.score = nn.Linear(hidden, n_tasks)
        self.first_threshold = nn.Parameter(torch.full((n_tasks,), -1.0))
        self.threshold_gap = nn.Parameter(torch.zeros(n_tasks))

    def forward(self, pooled: torch.Tensor, task_id: torch.Tensor) -> torch.Tensor:
        scores = self.score(pooled).gather(1, task_id.unsqueeze(1)).squeeze(1)
        theta1 = self.first_threshold[task_id]
        theta2 = theta1 + nn.functional.softplus(self.threshold_gap[task_id])
        return torch.stack([scores - theta1, scores - theta2], dim=1)


class UnifiedRanker(nn.Module):
    def __init__(self, base_model: str, *, tasks: list[str], routing: str = "prefix", private_layers: int = 1) -> None:
        super().__init__()
        if routing not in ROUTINGS:
            raise ValueError(f"unknown routing {routing!r}; choose one of {ROUTINGS}")
        self.tasks = list(tasks)
        self.routing = routing
        self.encoder = AutoModel.from_pretrained(base_model)
        hidden = self.encoder.config.hidden_size
        if routing == "mhp":
            layers = self.encoder.encoder.layer
            if not 1 <= private_layers < len(layers):
                raise ValueError(f"private_layers must be in 1..{len(layers) - 1}, got {private_layers}")
            # registered under the encoder so its parameters get the encoder's learning rate (encoder.*)
            private = PrivateTopLayers(layers[-private_layers:], n_tasks=len(tasks), config=self.encoder.config)
            self.encoder.add_module("private_top", private)
            self.encoder.encoder.layer = layers[:-private_layers]
        self.relevance = OrdinalHead(hidden, len(tasks) if routing in ("multihead", "mhp") else 1)
        self.engagement = nn.Linear(hidden, 2)  # CTR, CVR logits

    @property
    def private(self) -> PrivateTopLayers | None:
        """The per-task private top layers (``mhp`` routing only)."""
        return getattr(self.encoder, "private_top", None)

    def forward(self, input_ids, attention_mask, token_type_ids, task_id=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        if self.routing == "prefix" or task_id is None:
            task_id = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        if self.private is not None:
            hidden = self.private(hidden, attention_mask, task_id)
        pooled = mean_pool(hidden, attention_mask)
        return self.relevance(pooled, task_id), self.engagement(pooled)
