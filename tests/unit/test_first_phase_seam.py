"""The first-phase inference seam (``FirstPhaseScorer``, ``make_first_phase``) over a tiny randomly
initialised model of the shipped interface, exported the way ``training/first_phase/export.py`` exports.

Plumbing only (batching, broadcasting, the on/off decision); the shipped model is exercised over HTTP in
tests/integration/test_phased_ranking.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest
import torch

from service.inference.factory import make_first_phase
from service.inference.models import FirstPhaseScorer
from service.inference.onnx_local import OnnxLocalBackend
from service.settings import Settings
from training.first_phase.export import write_version
from training.first_phase.model import FirstPhaseModel, FirstPhaseShape

DIM = 384
TASKS = ["query_item", "item_item", "query_query"]


def tiny_repo(repo: Path, *, encoder: str = "encoder:4", kind: str | None = None) -> Path:
    torch.manual_seed(0)
    model = FirstPhaseModel(FirstPhaseShape(dim=DIM, hidden=(16,), task_dim=4))
    card = {"tasks": TASKS, "encoder": encoder, "ranker": "ranker:3", "calibration": {"label_cuts": [1.9, 2.5]}}
    version = write_version(model=model, repo=repo, version=1, card=card)
    if kind is not None:  # a card claiming another kind
        import json

        path = version / "shoprank.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"kind": kind}))
    return repo


class Counting:
    """The real backend, recording the rows of each call."""

    def __init__(self, inner) -> None:
        self.inner, self.rows = inner, []

    def model_info(self, model):
        return self.inner.model_info(model)

    def infer(self, model, inputs):
        self.rows.append(len(inputs["task_id"]))
        return self.inner.infer(model, inputs)


def unit(rng, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_scores_in_batches_of_at_most_max_batch_and_matches_one_run(tmp_path: Path) -> None:
    repo = tiny_repo(tmp_path)
    backend = Counting(OnnxLocalBackend(repo, max_batch=8))
    scorer = FirstPhaseScorer(backend, repo, "first_phase")
    rng = np.random.default_rng(0)
    q, i = unit(rng, 20), unit(rng, 20)
    heads = scorer.score(q, i, task="item_item")
    assert backend.rows == [8, 8, 4]
    session = ort.InferenceSession(str(repo / "first_phase" / "1" / "model.onnx"))
    rel, eng = session.run(["relevance_logits", "engagement_logits"],
                           {"query_embedding": q, "item_embedding": i, "task_id": np.full(20, 1, np.int64)})
    np.testing.assert_allclose(heads.relevance.p_partial_or_better, 1 / (1 + np.exp(-rel[:, 0])), rtol=1e-5)
    np.testing.assert_allclose(heads.ctr, 1 / (1 + np.exp(-eng[:, 0])), rtol=1e-5)
    assert heads.relevance.label_cuts == (1.9, 2.5)  # the card's own cuts
    assert scorer.model_version == "first_phase:1" and scorer.encoder == "encoder:4" and scorer.tasks() == TASKS


def test_one_query_vector_is_broadcast_over_the_candidates(tmp_path: Path) -> None:
    repo = tiny_repo(tmp_path)
    scorer = FirstPhaseScorer(OnnxLocalBackend(repo), repo, "first_phase")
    rng = np.random.default_rng(1)
    q, items = unit(rng, 1), unit(rng, 5)
    one = scorer.score(q, items)
    repeated = scorer.score(np.repeat(q, 5, axis=0), items)
    np.testing.assert_allclose(one.relevance.expected, repeated.relevance.expected, rtol=1e-6)
    assert len(scorer.score(q, np.zeros((0, DIM), np.float32)).ctr) == 0


@pytest.mark.parametrize(("encoder", "kind", "setting", "on", "needle"), [
    ("encoder:4", None, "first_phase", True, "on: first_phase:1 over encoder:4"),
    ("encoder:3", None, "first_phase", False, "trained on 'encoder:3', but encoder:4 is served"),
    ("encoder:4", "ranker", "first_phase", False, "is kind 'ranker'"),
    ("encoder:4", None, "missing_model", False, "off: no 'missing_model' model"),
    ("encoder:4", None, "", False, "off: SHOPRANK_FIRST_PHASE_MODEL is empty"),
])
def test_phasing_is_on_only_for_a_first_phase_of_the_served_encoder(tmp_path: Path, encoder, kind, setting, on,
                                                                      needle) -> None:
    repo = tiny_repo(tmp_path, encoder=encoder, kind=kind)
    settings = Settings(model_repo=repo, first_phase_model=setting)
    served = SimpleNamespace(model_version="encoder:4", vector_space="encoder:4")
    scorer, status = make_first_phase(OnnxLocalBackend(repo), settings, served)
    assert (scorer is not None) == on and needle in status, status
