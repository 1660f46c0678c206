"""MHP routing on a tiny random BERT: shapes, rank consistency, each row routed to its task's private layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from training.cross_encoder.model import UnifiedRanker, mean_pool

TASKS = ["query_item", "item_item", "query_query"]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> str:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    path = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(path)
    return str(path)


def batch(n: int = 6, seq: int = 7, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 64, (n, seq), generator=g)
    mask = torch.ones(n, seq, dtype=torch.long)
    mask[::2, -3:] = 0  # some padded rows
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def ranker(base: str, **kw) -> UnifiedRanker:
    torch.manual_seed(0)
    model = UnifiedRanker(base, tasks=TASKS, routing="mhp", **kw)
    return model.eval()


def test_layers_are_split_into_shared_and_private_copies(tiny_base):
    model = ranker(tiny_base, private_layers=1)
    assert len(model.encoder.encoder.layer) == 2
    assert len(model.private.towers) == 3 and all(len(t) == 1 for t in model.private.towers)
    reference = BertModel.from_pretrained(tiny_base).encoder.layer[-1].state_dict()
    for tower in model.private.towers:  # every tower starts from the pretrained top layer, as its own copy
        for name, value in tower[0].state_dict().items():
            torch.testing.assert_close(value, reference[name])
    assert tower[0].output.dense.weight.data_ptr() != model.private.towers[0][0].output.dense.weight.data_ptr()
    assert all(n.startswith("encoder.") for n, _ in model.named_parameters() if "towers" in n)  # encoder lr group
    two = ranker(tiny_base, private_layers=2)
    assert len(two.encoder.encoder.layer) == 1 and all(len(t) == 2 for t in two.private.towers)


def test_shapes_and_rank_consistency(tiny_base):
    model = ranker(tiny_base)
    with torch.no_grad():
        for tower in model.private.towers:  # make the towers differ, as after training
            for p in tower.parameters():
                p.add_(torch.randn_like(p) * 0.5)
        rel, eng = model(**batch(), task_id=torch.tensor([0, 1, 2, 0, 1, 2]))
    assert rel.shape == (6, 2) and eng.shape == (6, 2)
    assert (rel[:, 0] >= rel[:, 1]).all()  # P(y≥1) ≥ P(y≥2) for every row


def test_each_row_goes_through_its_own_tasks_private_layer(tiny_base):
    model = ranker(tiny_base)
    inputs = batch()
    task_id = torch.tensor([0, 1, 2, 2, 1, 0])
    with torch.no_grad():
        for tower in model.private.towers:
            for p in tower.parameters():
                p.add_(torch.randn_like(p) * 0.5)
        rel, _ = model(**inputs, task_id=task_id)
        shared = model.encoder(**inputs).last_hidden_state
        for row, task in enumerate(task_id.tolist()):
            one = {k: v[row : row + 1] for k, v in inputs.items()}
            own = model.private._run(model.private.towers[task], shared[row : row + 1], one["attention_mask"])
            expected = model.relevance(mean_pool(own, one["attention_mask"]), torch.tensor([task]))
            torch.testing.assert_close(rel[row : row + 1], expected, atol=1e-5, rtol=1e-5)
        # perturbing tower 1 moves only the rows routed to task 1
        before = rel.clone()
        for p in model.private.towers[1].parameters():
            p.add_(1.0)
        after, _ = model(**inputs, task_id=task_id)
    moved = (after - before).abs().sum(1) > 1e-6
    assert moved.tolist() == (task_id == 1).tolist()


def test_eager_and_export_paths_agree(tiny_base):
    model = ranker(tiny_base)
    inputs = batch()
    task_id = torch.tensor([2, 0, 1, 1, 0, 2])
    with torch.no_grad():
        for tower in model.private.towers:
            for p in tower.parameters():
                p.add_(torch.randn_like(p) * 0.5)
        shared = model.encoder(**inputs).last_hidden_state
        eager = model.private(shared, inputs["attention_mask"], task_id, select_all=False)
        everything = model.private(shared, inputs["attention_mask"], task_id, select_all=True)
    torch.testing.assert_close(eager, everything, atol=1e-5, rtol=1e-5)


def test_gradients_stay_in_the_routed_tower(tiny_base):
    model = ranker(tiny_base).train()
    rel, _ = model(**batch(), task_id=torch.zeros(6, dtype=torch.long))
    rel.sum().backward()
    grads = [sum(p.grad.abs().sum().item() for p in tower.parameters() if p.grad is not None) for tower in model.private.towers]
    assert grads[0] > 0 and grads[1] == 0 and grads[2] == 0


def test_state_dict_round_trip_and_onnx_export_with_task_id(tiny_base, tmp_path):
    import onnxruntime as ort

    model = ranker(tiny_base)
    with torch.no_grad():
        for tower in model.private.towers:
            for p in tower.parameters():
                p.add_(torch.randn_like(p) * 0.5)
    clone = ranker(tiny_base)
    clone.load_state_dict(model.state_dict())  # strict: load_ranker rebuilds the same structure
    inputs = batch()
    task_id = torch.tensor([1, 2, 0, 2, 1, 0])
    with torch.no_grad():
        expected, _ = model(**inputs, task_id=task_id)
        torch.testing.assert_close(clone(**inputs, task_id=task_id)[0], expected)
        path = tmp_path / "mhp.onnx"
        names = ["input_ids", "attention_mask", "token_type_ids", "task_id"]
        ids = torch.ones((2, 8), dtype=torch.long)  # traced like export_ranker: unpadded, another shape
        axes = {n: {0: "batch", 1: "sequence"} for n in names[:3]} | {"task_id": {0: "batch"}}
        torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids), torch.zeros(2, dtype=torch.long)),
                          str(path), input_names=names, output_names=["relevance_logits", "engagement_logits"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {k: v.numpy() for k, v in inputs.items()} | {"task_id": task_id.numpy()}
    np.testing.assert_allclose(session.run(["relevance_logits"], feeds)[0], expected.numpy(), atol=1e-4)
    swapped = feeds | {"task_id": np.array([0, 0, 0, 0, 0, 0])}  # task_id is a live input, not a constant
    assert not np.allclose(session.run(["relevance_logits"], swapped)[0], expected.numpy(), atol=1e-4)


def test_bad_routing_options_are_refused(tiny_base):
    with pytest.raises(ValueError, match="unknown routing"):
        UnifiedRanker(tiny_base, tasks=TASKS, routing="moe")
    with pytest.raises(ValueError, match="private_layers"):
        UnifiedRanker(tiny_base, tasks=TASKS, routing="mhp", private_layers=3)
