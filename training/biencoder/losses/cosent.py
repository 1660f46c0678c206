"""CoSENT distillation: sentence-transformers' CoSENTLoss with the teacher's score as the label.

loss = log(1 + Σ_{t_i > t_j} exp(λ (s_j − s_i))): every pair of pairs the teacher orders is a
logistic ranking term on the student's cosines, so only the teacher's ORDER matters (invariant to
any increasing transform of the teacher, stricter than Pearson's affine invariance). The library
implements it (O(n log n), no quadratic matrix); this module only names it for the KD ablation.
"""

from __future__ import annotations

from sentence_transformers.sentence_transformer.losses import CoSENTLoss


class CoSENTDistillationLoss(CoSENTLoss):
    """CoSENTLoss(scale=20) over (text_a, text_b, teacher score) rows; see the module docstring."""
