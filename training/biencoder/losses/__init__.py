"""Knowledge-distillation losses for the student, one per module (sentence-transformers loss modules).

Each takes ``(sentence_features, labels)`` with labels = the teacher's score for the pair and
compares it with the student's cosine similarity; ``kd_loss(name, model)`` picks one for the
KD-loss ablation (eBay LLMDistill4Ads Table 1b: MSE vs CoSENT vs Pearson).
"""

from __future__ import annotations

from torch import nn

from training.biencoder.losses.cosent import CoSENTDistillationLoss
from training.biencoder.losses.mse import MSEDistillationLoss
from training.biencoder.losses.pearson import PearsonDistillationLoss, pearson_distillation_loss
from training.names import KD_LOSSES


def kd_loss(name: str, model, *, teacher_range: tuple[float, float] = (1.0, 3.0)) -> nn.Module:
    """The distillation loss called ``name``; ``teacher_range`` only matters to MSE (the others are scale-free)."""
    if name == "pearson":
        return PearsonDistillationLoss(model)
    if name == "cosent":
        return CoSENTDistillationLoss(model)
    if name == "mse":
        return MSEDistillationLoss(model, teacher_range=teacher_range)
    raise ValueError(f"unknown KD loss {name!r}; choose one of {KD_LOSSES}")


__all__ = ["KD_LOSSES", "CoSENTDistillationLoss", "MSEDistillationLoss", "PearsonDistillationLoss", "kd_loss",
           "pearson_distillation_loss"]
