"""KD losses on hand-checked numbers: embeddings built so their cosines are known exactly."""

from __future__ import annotations

import math

import pytest
import torch

from training.biencoder.losses import (
    CoSENTDistillationLoss,
    MSEDistillationLoss,
    PearsonDistillationLoss,
    kd_loss,
    pearson_distillation_loss,
)


def pair_embeddings(cosines: list[float]) -> list[torch.Tensor]:
    """Two columns of 2-d unit vectors whose row-wise cosines are ``cosines``."""
    angles = torch.tensor([math.acos(c) for c in cosines], dtype=torch.float64)
    left = torch.stack([torch.ones_like(angles), torch.zeros_like(angles)], dim=1)
    right = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return [left, right]


def test_pearson_hand_checked_value():
    # s̄ = 7/3, s − s̄ = (−4/3, −1/3, 5/3), t − t̄ = (−1, 0, 1): r = 3 / (√42/3 · √2) = 9/√84
    loss = pearson_distillation_loss(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 2.0, 3.0]))
    assert loss.item() == pytest.approx(1 - 9 / math.sqrt(84), abs=1e-6)


@pytest.mark.parametrize("scale,shift", [(1.0, 0.0), (0.5, 1.0), (10.0, -3.0)])
def test_pearson_is_zero_for_affine_related_scores_and_invariant_to_teacher_scale_and_shift(scale, shift):
    student = torch.tensor([0.1, 0.5, 0.3, 0.9])
    assert pearson_distillation_loss(student, student * 2 + 1).item() == pytest.approx(0.0, abs=1e-6)
    teacher = torch.tensor([1.0, 2.7, 1.3, 2.2])
    base = pearson_distillation_loss(student, teacher)
    assert pearson_distillation_loss(student, teacher * scale + shift).item() == pytest.approx(base.item(), abs=1e-6)
    assert pearson_distillation_loss(student, -teacher).item() == pytest.approx(2 - base.item(), abs=1e-6)


def test_pearson_gradient_pushes_an_under_scored_pair_up_and_an_over_scored_pair_down():
    student = torch.tensor([0.0, 1.0, 0.5], requires_grad=True)  # third pair: teacher's best, student's middle
    pearson_distillation_loss(student, torch.tensor([0.0, 1.0, 2.0])).backward()
    assert student.grad[2] < 0 < student.grad[1]  # descent raises the third score and lowers the second
    assert student.grad.sum().item() == pytest.approx(0.0, abs=1e-6)  # a shift of all scores changes nothing


def test_pearson_degenerate_batches():
    one = torch.tensor([0.3], requires_grad=True)
    assert pearson_distillation_loss(one, torch.tensor([2.0])).item() == 0.0
    flat_teacher = pearson_distillation_loss(torch.tensor([0.1, 0.2]), torch.tensor([2.0, 2.0]))
    assert flat_teacher.item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        pearson_distillation_loss(torch.zeros(3), torch.zeros(2))


def test_pearson_module_reads_cosines_from_embeddings():
    loss = PearsonDistillationLoss(model=None)
    value = loss.compute_loss_from_embeddings(pair_embeddings([0.2, 0.4, 0.8]), torch.tensor([1.0, 2.0, 4.0]))
    assert value.item() == pytest.approx(0.0, abs=1e-6)  # cosines 0.2·t exactly


def test_cosent_hand_checked_value_and_order_only_dependence():
    loss = CoSENTDistillationLoss(model=None)  # scale 20
    cosines = [0.5, 0.2]
    # teacher orders pair 0 above pair 1 and the student agrees: log(1 + e^{20(0.2 − 0.5)})
    agree = loss.compute_loss_from_embeddings(pair_embeddings(cosines), torch.tensor([3.0, 1.0]))
    assert agree.item() == pytest.approx(math.log1p(math.exp(-6.0)), rel=1e-5)
    disagree = loss.compute_loss_from_embeddings(pair_embeddings(cosines), torch.tensor([1.0, 3.0]))
    assert disagree.item() == pytest.approx(math.log1p(math.exp(6.0)), rel=1e-5)
    monotone = loss.compute_loss_from_embeddings(pair_embeddings(cosines), torch.tensor([100.0, -5.0]))
    assert monotone.item() == pytest.approx(agree.item(), rel=1e-6)


def test_mse_maps_the_teacher_range_to_zero_one():
    loss = MSEDistillationLoss(model=None, teacher_range=(1.0, 3.0))
    # teacher 1, 2, 3 → targets 0, 0.5, 1; cosines 0, 0.5, 0.7 → mean((0, 0, 0.3)²) = 0.03
    value = loss.compute_loss_from_embeddings(pair_embeddings([0.0, 0.5, 0.7]), torch.tensor([1.0, 2.0, 3.0]))
    assert value.item() == pytest.approx(0.03, abs=1e-6)
    scaled = loss.compute_loss_from_embeddings(pair_embeddings([0.0, 0.5, 0.7]), torch.tensor([2.0, 4.0, 6.0]))
    assert scaled.item() != pytest.approx(value.item())  # unlike Pearson, MSE is not scale-free
    with pytest.raises(ValueError):
        MSEDistillationLoss(model=None, teacher_range=(3.0, 1.0))


def test_kd_loss_selects_by_name():
    assert isinstance(kd_loss("pearson", None), PearsonDistillationLoss)
    assert isinstance(kd_loss("cosent", None), CoSENTDistillationLoss)
    assert isinstance(kd_loss("mse", None, teacher_range=(0.0, 2.0)), MSEDistillationLoss)
    with pytest.raises(ValueError, match="unknown KD loss"):
        kd_loss("kl", None)
