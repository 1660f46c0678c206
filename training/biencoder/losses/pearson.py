"""Pearson-correlation distillation: loss = 1 − r(student cosine scores, teacher scores) over the batch.

Why correlation and not MSE: the student's cosine and the teacher's relevance live on different
scales, and a retrieval model only needs their ORDER and relative spacing to agree. r is
invariant to any positive affine change of either side (teacher scale/shift, student cosine
offset), so the student is free to use the cosine range that suits retrieval (LLMDistill4Ads
found Pearson KD ≥ MSE KD on student–teacher correlation). Written here because
sentence-transformers has no correlation loss.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sentence_transformers import util
from sentence_transformers.base.losses.merged_forward import embed_columns
from torch import Tensor, nn


def pearson_distillation_loss(student_scores: Tensor, teacher_scores: Tensor, *, eps: float = 1e-8) -> Tensor:
    """1 − Pearson r between two [n] score vectors (n ≥ 2); 0 means perfectly affine-related.

    r = Σ (s − s̄)(t − t̄) / (‖s − s̄‖ ‖t − t̄‖). A batch whose teacher scores are all equal has no
    order to learn and gives r = 0 (loss 1, zero gradient).
    """
    s = student_scores.float().reshape(-1)
    t = teacher_scores.to(s.dtype).reshape(-1)
    if s.numel() != t.numel():
        raise ValueError(f"{s.numel()} student scores but {t.numel()} teacher scores")
    if s.numel() < 2:
        return s.sum() * 0.0  # correlation needs two pairs; keep the graph for the trainer
    s_dev, t_dev = s - s.mean(), t - t.mean()
    r = (s_dev * t_dev).sum() / (s_dev.norm() * t_dev.norm()).clamp(min=eps)
    return 1.0 - r


class PearsonDistillationLoss(nn.Module):
    """sentence-transformers loss: (text_a, text_b) pairs with a float teacher score per pair.

    Args:
        model: the SentenceTransformer student.
        similarity_fct: pairwise similarity of the two columns' embeddings (cosine by default).

    Inputs: two text columns and a float ``label`` (any scale: the teacher's expected relevance).
    Works inside ``MatryoshkaLoss`` (it only reads ``sentence_embedding``).
    """

    def __init__(self, model, similarity_fct=util.pairwise_cos_sim) -> None:
        super().__init__()
        self.model = model
        self.similarity_fct = similarity_fct

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        return self.compute_loss_from_embeddings(embed_columns(self.model, sentence_features), labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        scores = self.similarity_fct(embeddings[0], embeddings[1])
        return pearson_distillation_loss(scores, labels)

    def get_config_dict(self) -> dict[str, Any]:
        return {"similarity_fct": self.similarity_fct.__name__}

    @property
    def citation(self) -> str:
        return "LLMDistill4Ads (eBay): Pearson-correlation distillation from a cross-encoder to a bi-encoder."
