"""MSE distillation: (student cosine − teacher score mapped to [0, 1])², the ablation's baseline.

Unlike Pearson and CoSENT it pins the absolute cosine to the teacher's scale, so the teacher's
range must be stated: ``teacher_range=(low, high)`` maps low → 0 and high → 1 (default the 1–3
relevance scale). Built on sentence-transformers' CosineSimilarityLoss (whose loss is exactly
MSE(cos, label)); this class only rescales the labels.
"""

from __future__ import annotations

from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
from torch import Tensor


class MSEDistillationLoss(CosineSimilarityLoss):
    def __init__(self, model, *, teacher_range: tuple[float, float] = (1.0, 3.0)) -> None:
        super().__init__(model)
        low, high = teacher_range
        if high <= low:
            raise ValueError(f"teacher_range must be (low, high) with high > low, got {teacher_range}")
        self.teacher_range = (float(low), float(high))

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        low, high = self.teacher_range
        return super().compute_loss_from_embeddings(embeddings, (labels.float() - low) / (high - low))

    def get_config_dict(self) -> dict:
        return super().get_config_dict() | {"teacher_range": self.teacher_range}
