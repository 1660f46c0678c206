"""The within-query RankNet loss and the query-grouped batches it needs."""

import numpy as np
import pytest
import torch

from training.cross_encoder.losses import pairwise_rank_loss
from training.cross_encoder.train import RankerConfig, _group_batches, train_ranker


def _logits_for(expected: list[float]) -> torch.Tensor:
    """Cumulative logits whose expected rating 1 + P(y≥1) + P(y≥2) is ``expected`` (both heads equal)."""
    p = (torch.tensor(expected) - 1.0) / 2.0
    return torch.logit(p).unsqueeze(1).repeat(1, 2)


def test_loss_is_low_in_the_right_order_and_high_in_the_wrong_one():
    relevance, groups = torch.tensor([3.0, 2.0, 1.0]), torch.zeros(3, dtype=torch.long)
    right, wrong = _logits_for([2.9, 2.0, 1.1]), _logits_for([1.1, 2.0, 2.9])
    assert pairwise_rank_loss(right, relevance, groups) < 0.1 < 2.0 < pairwise_rank_loss(wrong, relevance, groups)


def test_pairs_of_different_groups_and_ties_carry_no_loss():
    relevance = torch.tensor([3.0, 1.0, 2.0, 2.0])
    groups = torch.tensor([0, 1, 2, 2])  # 3 vs 1 in different queries; the two 2s tie
    logits = _logits_for([1.2, 2.8, 1.5, 2.5]).requires_grad_()
    loss = pairwise_rank_loss(logits, relevance, groups)
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph: a batch without pairs must not break the step
    assert torch.count_nonzero(logits.grad) == 0


def test_the_gap_weights_the_pair():
    groups = torch.zeros(2, dtype=torch.long)
    logits = _logits_for([2.0, 2.0])  # no order predicted: each pair costs log 2, whatever its gap
    assert pairwise_rank_loss(logits, torch.tensor([3.0, 1.0]), groups) == pytest.approx(np.log(2), rel=1e-5)


def test_group_batches_keep_a_query_together_and_use_every_row_once():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 200, 1500)
    batches = _group_batches(groups, rng.integers(5, 40, 1500), 32, rng)
    rows = np.concatenate(batches)
    assert sorted(rows) == list(range(1500)) and max(len(b) for b in batches) <= 32
    # groups are packed one after another, so each filled batch splits at most one group
    spans = [sum(g in set(groups[b]) for b in batches) for g in np.unique(groups)]
    assert sum(spans) - len(spans) <= len(batches) - 1


def test_pairwise_loss_needs_group_batches():
    with pytest.raises(ValueError, match="batching='group'"):
        RankerConfig(w_pairwise=1.0)
    with pytest.raises(ValueError, match="'length' or 'group'"):
        RankerConfig(batching="random")


@pytest.mark.slow
def test_a_ranker_trains_with_the_pairwise_loss(tmp_path):
    out = train_ranker(_tiny_rows(), RankerConfig(batch_size=4, w_pairwise=1.0, batching="group", seed=3), tmp_path)
    assert (out / "model.pt").exists()
    assert '"w_pairwise": 1.0' in (out / "config.json").read_text()


def _tiny_rows():
    import pandas as pd

    return pd.DataFrame({
        "task": ["query_item"] * 6, "left": ["drill", "drill", "drill", "paint", "paint", "paint"],
        "right": ["cordless drill", "drill bit set", "garden hose", "wall paint", "paint roller", "lamp"],
        "relevance": [3.0, 2.33, 1.0, 3.0, 2.0, 1.33], "ctr": [0.3] * 6, "cvr": [0.1] * 6,
        "cvr_mask": [1.0] * 6,
    })
