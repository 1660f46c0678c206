"""The shipped first phase (``model_repo/first_phase``): loads in ONNX Runtime with the declared tensors, its card
names the served encoder and ranker, and it agrees with ranker:3 on real validation pairs from ``data/``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from service.inference.models import Encoder, PairScorer
from service.inference.onnx_local import OnnxLocalBackend
from service.inference.repository import latest_version
from service.ranking.ordinal import from_cumulative_logits
from training.data import labelled_pairs, split_frame
from training.export.spec import first_phase_spec, read_config

ROOT = Path(__file__).resolve().parents[2]
REPO = ROOT / "model_repo"
PAIRS = 200

@pytest.fixture(scope="module")
def shipped():
    version = latest_version(REPO, "first_phase")
    return version, json.loads((version.path / "shoprank.json").read_text())


def test_config_is_the_spec_and_the_onnx_file_declares_its_tensors(shipped) -> None:
    version, card = shipped
    assert read_config(REPO / "first_phase") == first_phase_spec("first_phase", card["dim"])
    session = ort.InferenceSession(str(version.onnx_path), providers=["CPUExecutionProvider"])
    inputs = {i.name: (i.type, i.shape[1:]) for i in session.get_inputs()}
    assert inputs == {"query_embedding": ("tensor(float)", [384]), "item_embedding": ("tensor(float)", [384]),
                      "task_id": ("tensor(int64)", [])}
    outputs = {o.name: (o.type, o.shape[1:]) for o in session.get_outputs()}
    assert outputs == {"relevance_logits": ("tensor(float)", [2]), "engagement_logits": ("tensor(float)", [2])}


def test_card_names_the_served_encoder_and_ranker(shipped) -> None:
    _, card = shipped
    ranker, encoder = latest_version(REPO, "ranker"), latest_version(REPO, "encoder")
    assert card["kind"] == "first_phase" and card["tasks"] == ranker.card["tasks"]
    assert card["encoder"] == encoder.tag and card["ranker"] == ranker.tag
    assert card["calibration"]["label_cuts"] == ranker.card["calibration"]["label_cuts"]
    assert card["parity"]["max_abs_diff_relevance_logits"] < 1e-4


def test_expected_relevance_follows_the_ranker_on_validation_pairs(shipped) -> None:
    version, card = shipped
    pairs = split_frame(labelled_pairs(ROOT / "data"), "validation").drop_duplicates(["query", "title"])
    sample = pairs.sample(n=PAIRS, random_state=7)
    queries, titles = sample["query"].tolist(), sample["title"].tolist()
    backend = OnnxLocalBackend(REPO, intra_op_threads=2)
    encoder = Encoder(backend, REPO, "encoder", max_tokens=64, sub_batch=32, dim=card["dim"])
    session = ort.InferenceSession(str(version.onnx_path), providers=["CPUExecutionProvider"])
    relevance, engagement = session.run(["relevance_logits", "engagement_logits"], {
        "query_embedding": encoder.encode(queries, kind="query"), "item_embedding": encoder.encode(titles, kind="item"),
        "task_id": np.zeros(PAIRS, dtype=np.int64)})
    assert relevance.shape == (PAIRS, 2) and engagement.shape == (PAIRS, 2)
    assert np.isfinite(relevance).all() and np.isfinite(engagement).all()
    ranker = PairScorer(backend, REPO, "ranker", max_tokens=64, sub_batch=32).score(queries, titles)
    mine = from_cumulative_logits(relevance).expected
    pearson = float(np.corrcoef(mine, ranker.relevance.expected)[0, 1])
    print(f"first phase vs {card['ranker']} on {PAIRS} validation pairs: Pearson {pearson:.3f}")
    assert pearson > 0.5
