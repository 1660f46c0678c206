"""A further ranker pass starts from the earlier pass's weights, and only from a ranker of the same shape."""

from pathlib import Path

import pytest
import torch

from training.cross_encoder.train import RankerConfig, load_ranker, train_ranker_from_files

DATA = Path(__file__).resolve().parents[2] / "data"

pytestmark = pytest.mark.slow


def test_a_second_pass_continues_from_the_first_and_refuses_another_shape(tmp_path):
    first = train_ranker_from_files(data_dir=DATA, out_dir=tmp_path / "first", limit=8,
                                    config=RankerConfig(batch_size=8, seed=1))
    # lr 0: the second pass must leave the loaded weights exactly as the first pass wrote them
    frozen = train_ranker_from_files(data_dir=DATA, out_dir=tmp_path / "frozen", limit=8,
                                     config=RankerConfig(batch_size=8, lr=0.0, head_lr=0.0, seed=2,
                                                         init_from=str(first)))
    before, after = load_ranker(first)[0].state_dict(), load_ranker(frozen)[0].state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert load_ranker(frozen)[1]["init_from"] == str(first)

    with pytest.raises(ValueError, match="routing"):
        train_ranker_from_files(data_dir=DATA, out_dir=tmp_path / "other", limit=8,
                                config=RankerConfig(batch_size=8, init_from=str(first), routing="multihead"))
