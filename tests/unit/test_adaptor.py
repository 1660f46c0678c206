"""The catalogue-softmax adaptor: its loss is a cross-entropy over every item, fitting it recovers a distortion
the identity misses, and the exported ONNX encoder computes what the adapted sentence-transformers dir does."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from training.biencoder.adaptor import (
    AdaptorConfig,
    AdaptorFit,
    fit_adaptor,
    matryoshka_softmax_loss,
    positive_rows,
    save_adapted_student,
)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_loss_is_cross_entropy_over_all_items_at_each_cut():
    generator = torch.Generator().manual_seed(0)
    queries, items = torch.randn(5, 8, generator=generator), torch.randn(30, 8, generator=generator)
    targets = torch.tensor([3, 0, 29, 7, 7])
    scale = torch.tensor(10.0)
    got = matryoshka_softmax_loss(queries, items, torch.arange(5), targets, dims=(8, 4), weights=(1.0, 2.0),
                                  scale=scale)
    expected = 0.0
    for dim, weight in ((8, 1.0), (4, 2.0)):
        q = torch.nn.functional.normalize(queries[:, :dim], dim=-1)
        t = torch.nn.functional.normalize(items[:, :dim], dim=-1)
        expected += weight * torch.nn.functional.cross_entropy(scale * q @ t.T, targets)
    assert torch.allclose(got, expected, atol=1e-5)


def _recall_at_1(queries: np.ndarray, items: np.ndarray, targets: np.ndarray, dim: int) -> float:
    q, t = _unit(queries[:, :dim]), _unit(items[:, :dim])
    return float(((q @ t.T).argmax(axis=1) == targets).mean())


def test_fit_learns_to_drop_nuisance_directions_and_put_the_signal_first():
    rng = np.random.default_rng(0)
    signal = _unit(rng.normal(size=(200, 6)))  # what identifies an item, in the LAST 6 of 16 coordinates
    targets = rng.integers(0, 200, size=600)

    def with_nuisance(rows: np.ndarray) -> np.ndarray:  # 10 loud coordinates, drawn afresh for every vector
        return np.hstack([rng.normal(size=(len(rows), 10)), rows]).astype(np.float32)

    items, queries = with_nuisance(signal), with_nuisance(signal[targets] + 0.05 * rng.normal(size=(600, 6)))
    before = {d: _recall_at_1(queries, items, targets, d) for d in (16, 6)}
    fit = fit_adaptor(queries, items, [[t] for t in targets],
                      AdaptorConfig(dims=(16, 6), weights=(1.0, 1.0), epochs=60, lr=0.02, batch_queries=100))
    after = {d: _recall_at_1(queries @ fit.matrix, items @ fit.matrix, targets, d) for d in (16, 6)}
    assert before[16] < 0.1 and before[6] < 0.05  # the first 6 coordinates are pure nuisance
    assert after[16] > 0.9 and after[6] > 0.9  # the 6-d cut now carries the signal
    assert fit.epoch_losses[-1] < fit.epoch_losses[0]


def test_positive_rows_keep_labels_at_or_above_the_threshold_and_known_items():
    pairs = pd.DataFrame({"query": ["a", "a", "a", "b", "c"], "item_id": ["x", "y", "z", "y", "unknown"],
                          "label": [2, 1, 0, 2, 2]})
    assert positive_rows(pairs, ["a", "b", "c", "d"], ["x", "y", "z"], min_label=1) == [[0, 1], [1], [], []]
    assert positive_rows(pairs, ["a"], ["x", "y", "z"], min_label=2) == [[0]]


def test_config_and_inputs_are_checked():
    vectors = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match="weights"):
        fit_adaptor(vectors, vectors, [[0]] * 4, AdaptorConfig(dims=(4, 2), weights=(1.0,)))
    with pytest.raises(ValueError, match="wider"):
        fit_adaptor(vectors, vectors, [[0]] * 4, AdaptorConfig(dims=(8,), weights=(1.0,)))
    with pytest.raises(ValueError, match="no query"):
        fit_adaptor(vectors, vectors, [[]] * 4, AdaptorConfig(dims=(4,), weights=(1.0,)))


@pytest.mark.slow
def test_export_folds_the_adaptor_into_the_onnx_encoder(tmp_path):
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    from training.base_model import base_model_path
    from training.cross_encoder.model import mean_pool
    from training.export.onnx_export import export_encoder

    rng = np.random.default_rng(1)
    matrix = (np.eye(384) + 0.2 * rng.normal(size=(384, 384))).astype(np.float32)
    adapted = save_adapted_student(Path(base_model_path()), tmp_path / "adapted",
                                   AdaptorFit(matrix, [1.0], 20.0, 0.1), card={"epochs": 1})
    version_dir = export_encoder(repo=tmp_path / "repo", source=str(adapted), int8=False)

    texts = ["cordless drill", "Simpson Strong-Tie 12-Gauge Angle", "rain shower head"]
    model = SentenceTransformer(str(adapted), device="cpu")
    tokens = model.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():  # the map applies to row vectors as fitted: unit(mean_pool(...) @ matrix)
        hidden = AutoModel.from_pretrained(base_model_path())(**tokens).last_hidden_state
        by_hand = _unit(mean_pool(hidden, tokens["attention_mask"]).numpy() @ matrix)
    expected = model.encode(texts, normalize_embeddings=True)
    assert np.abs(expected - by_hand).max() < 1e-4
    (onnx,) = ort.InferenceSession(str(version_dir / "model.onnx")).run(
        None, {k: tokens[k].numpy().astype(np.int64) for k in ("input_ids", "attention_mask")})
    assert np.abs(onnx - expected).max() < 1e-4
    base = SentenceTransformer(base_model_path(), device="cpu").encode(texts, normalize_embeddings=True)
    assert np.abs(onnx - base).max() > 0.05  # the map is really in the graph
