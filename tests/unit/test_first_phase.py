"""First phase plumbing: pairs, model shapes, the distillation loss, fitting, and the ONNX export's parity."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from training.export.spec import first_phase_spec, read_config, to_pbtxt
from training.first_phase.embed import int8_roundtrip
from training.first_phase.export import write_version
from training.first_phase.model import FirstPhaseModel, FirstPhaseShape, distillation_loss
from training.first_phase.pairs import TASKS, labelled_task_pairs, retrieved_pairs
from training.first_phase.train import FirstPhaseConfig, PairSet, fit_first_phase, predict

DIM = 16


def _unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _synthetic(rng: np.random.Generator, n: int) -> PairSet:
    """A 'teacher' whose relevance is a function of the cosine and task, engagement of the first coordinates."""
    left, right = _unit(rng, n), _unit(rng, n)
    task = rng.integers(0, 3, size=n)
    cosine = (left * right).sum(axis=1)
    score = 4 * cosine + np.array([0.5, -0.5, 0.0])[task]
    frame = pd.DataFrame({"task": np.array(TASKS)[task], "left": "l", "right": "r", "relevance": np.nan,
                          "source": "labelled"})
    frame["relevance_logits"] = list(np.stack([score + 1.0, score - 1.0], axis=1).astype(np.float32))
    frame["engagement_logits"] = list(np.stack([2 * left[:, 0], right[:, 1]], axis=1).astype(np.float32))
    return PairSet(frame, left, right, int8_roundtrip(left), int8_roundtrip(right))


def test_model_maps_two_vectors_and_a_task_to_the_rankers_outputs() -> None:
    model = FirstPhaseModel(FirstPhaseShape(dim=DIM, hidden=(8,)))
    rel, eng = model(torch.randn(5, DIM), torch.randn(5, DIM), torch.tensor([0, 1, 2, 0, 1]))
    assert rel.shape == (5, 2) and eng.shape == (5, 2)
    features = FirstPhaseModel.features(torch.ones(1, DIM), torch.ones(1, DIM))
    assert features.shape == (1, 4 * DIM + 1) and float(features[0, -1]) == DIM  # the last one is the dot product


def test_distillation_loss_is_zero_at_the_teacher_and_refuses_unknown_kinds() -> None:
    rel, eng = torch.randn(4, 2), torch.randn(4, 2)
    assert float(distillation_loss(rel, eng, rel, eng, kind="mse")) == 0.0
    bce = distillation_loss(rel, eng, rel, eng, kind="bce")
    # for fixed teacher targets, soft-target BCE is smallest where the prediction equals the teacher
    # (moving the *targets* instead changes their entropy, so that comparison proves nothing)
    for shift in (-3.0, -0.5, 0.5, 3.0):
        assert float(bce) < float(distillation_loss(rel + shift, eng, rel, eng, kind="bce"))
        assert float(bce) < float(distillation_loss(rel, eng + shift, rel, eng, kind="bce"))
    with pytest.raises(ValueError, match="unknown distillation loss"):
        distillation_loss(rel, eng, rel, eng, kind="hinge")


def test_fit_learns_the_teacher_and_keeps_the_best_validation_epoch() -> None:
    rng = np.random.default_rng(0)
    train, validation = _synthetic(rng, 2_000), _synthetic(rng, 300)
    config = FirstPhaseConfig(hidden=(32,), epochs=8, batch_size=64, lr=5e-3, threads=1, dropout=0.0)
    model, figures = fit_first_phase(train, validation, config)
    rel, _ = predict(model, validation.left, validation.right, validation.task_id)
    assert np.corrcoef(rel[:, 0], validation.relevance_logits[:, 0])[0, 1] > 0.9
    best = min(h["validation_mse_relevance_logits"] for h in figures["history"])
    assert np.mean((rel - validation.relevance_logits) ** 2) == pytest.approx(best, abs=1e-3)
    assert figures["train_pairs"] == 2_000 and figures["epochs_run"] == 8


def test_int8_roundtrip_is_the_stores_small_quantisation_error() -> None:
    vectors = _unit(np.random.default_rng(1), 50, 384)
    back = int8_roundtrip(vectors)
    err = np.abs(back - vectors).max(axis=1)
    assert np.all(err > 0) and np.all(err <= np.abs(vectors).max(axis=1) / 254 + 1e-7)


def test_labelled_pairs_cover_three_tasks_and_retrieved_pairs_skip_known_ones() -> None:
    pairs = pd.DataFrame({"query": ["a", "a", "b", "b"], "item_id": ["1", "2", "1", "3"],
                          "title": ["t1", "t2", "t1", "t3"], "relevance": [3.0, 2.0, 2.5, 1.0]})
    frame = labelled_task_pairs(pairs)
    assert set(frame["task"]) == {"query_item", "item_item", "query_query"}
    assert len(frame[frame["task"] == "query_item"]) == 4 and frame["source"].eq("labelled").all()
    queries, titles = ["a", "b"], ["t1", "t2", "t3"]
    q, t = np.array([[1, 0.5, 0], [0, 1, 0.2]], dtype=np.float32), np.eye(3, dtype=np.float32)
    retrieved = retrieved_pairs(queries, q, titles, t, k=2, exclude=frame[frame["task"] == "query_item"])
    assert retrieved["relevance"].isna().all() and set(retrieved["source"]) == {"retrieved"}
    known = set(zip(pairs["query"], pairs["title"]))
    assert not known & set(zip(retrieved["left"], retrieved["right"]))
    assert list(zip(retrieved["left"], retrieved["right"])) == [("b", "t2")]  # a: t1, t2; b: t2, t3 (known)


def test_export_matches_torch_in_onnx_runtime_with_a_config_from_the_spec(tmp_path) -> None:
    rng = np.random.default_rng(2)
    model = FirstPhaseModel(FirstPhaseShape(dim=DIM, hidden=(16, 8)))
    left, right, task = _unit(rng, 64), _unit(rng, 64), rng.integers(0, 3, size=64)
    version_dir = write_version(model=model, repo=tmp_path, version=3, card={"tasks": list(TASKS)},
                                parity_rows=(left, right, task))
    card = json.loads((version_dir / "shoprank.json").read_text())
    assert card["kind"] == "first_phase" and card["parity"]["max_abs_diff_relevance_logits"] < 1e-5
    assert read_config(tmp_path / "first_phase") == first_phase_spec("first_phase", DIM)
    assert (tmp_path / "first_phase" / "config.pbtxt").read_text() == to_pbtxt(first_phase_spec("first_phase", DIM))
    session = ort.InferenceSession(str(version_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["query_embedding", "item_embedding", "task_id"]
    for rows in (1, 7):  # dynamic batch axis
        rel, eng = session.run(["relevance_logits", "engagement_logits"], {
            "query_embedding": left[:rows], "item_embedding": right[:rows], "task_id": task[:rows].astype(np.int64)})
        with torch.no_grad():
            want_rel, want_eng = model(torch.from_numpy(left[:rows]), torch.from_numpy(right[:rows]),
                                       torch.from_numpy(task[:rows].astype(np.int64)))
        assert rel.shape == (rows, 2) and np.abs(rel - want_rel.numpy()).max() < 1e-5
        assert np.abs(eng - want_eng.numpy()).max() < 1e-5
    assert not list((tmp_path / "first_phase").glob(".staging-*"))


def test_given_train_scores_refuse_pairs_of_other_splits_and_other_rankers(tmp_path) -> None:
    from training.data import split_of
    from training.first_phase.step import _given_train_scores
    from training.first_phase.targets import save_scores

    train_q = next(f"q{i}" for i in range(100) if split_of(f"q{i}") == "train")
    val_q = next(f"q{i}" for i in range(100) if split_of(f"q{i}") == "validation")
    frame = pd.DataFrame({"task": ["query_item", "item_item"], "left": [train_q, "t1"], "right": ["t1", "t2"],
                          "relevance": [2.0, np.nan], "source": "labelled",
                          "relevance_logits": [np.zeros(2)] * 2, "engagement_logits": [np.zeros(2)] * 2})
    save_scores(tmp_path / "ok.npz", frame, ranker="ranker:3")
    assert len(_given_train_scores(tmp_path / "ok.npz", "ranker:3")) == 2
    with pytest.raises(ValueError, match="scored by ranker:3"):
        _given_train_scores(tmp_path / "ok.npz", "ranker:4")
    save_scores(tmp_path / "leak.npz", frame.assign(left=[val_q, "t1"]), ranker="ranker:3")
    with pytest.raises(ValueError, match="non-train queries"):
        _given_train_scores(tmp_path / "leak.npz", "ranker:3")
