"""The ranker's engagement loss: rows without engagement (derived tasks) must not move the CTR head."""

import torch

from training.cross_encoder.losses import engagement_loss


def test_ctr_mask_leaves_rows_without_engagement_out():
    logits = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    ctr, cvr, cvr_mask = torch.tensor([0.5, 0.0]), torch.zeros(2), torch.zeros(2)
    masked = engagement_loss(logits, ctr, cvr, cvr_mask, torch.tensor([1.0, 0.0]))
    only_first = engagement_loss(logits[:1], ctr[:1], cvr[:1], cvr_mask[:1])
    assert torch.isclose(masked, only_first)
    assert engagement_loss(logits, ctr, cvr, cvr_mask) > masked  # unmasked, row 2 is punished for its logit 5


def test_all_masked_rows_give_zero_loss_not_nan():
    loss = engagement_loss(torch.ones(3, 2), torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3))
    assert loss.item() == 0.0
