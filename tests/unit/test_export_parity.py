"""ONNX exports must compute what the torch models compute (fp32 tightly, int8 approximately)."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from transformers import AutoTokenizer

from service.inference.models import Encoder, PairScorer
from service.inference.onnx_local import OnnxLocalBackend
from training.cross_encoder.train import RankerConfig, load_ranker, train_ranker_from_files
from training.export.onnx_export import export_encoder, export_ranker

DATA = Path(__file__).resolve().parents[2] / "data"
QUERIES = ["angle bracket", "deck over", "cordless drill", "rain shower head"]
TITLES = ["Simpson Strong-Tie 12-Gauge Angle", "BEHR Premium Textured DeckOver 1-gal. Wood and Concrete Coating",
          "Hampton Bay Patio Dining Chairs (2-Pack)", "Delta Vero 1-Handle Shower Only Faucet Trim Kit in Chrome"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    """A ranker trained for a few steps, exported fp32 as version 1 and int8 as version 2."""
    root = tmp_path_factory.mktemp("export")
    config = RankerConfig(epochs=1, batch_size=8)
    artifact = train_ranker_from_files(data_dir=DATA, out_dir=root / "ranker", config=config, limit=32)
    repo = root / "repo"
    export_encoder(repo=repo, int8=False, version=1)
    export_ranker(artifact_dir=artifact, repo=repo, int8=False, version=1)
    export_ranker(artifact_dir=artifact, repo=repo, int8=True, version=2)
    return artifact, repo


def _torch_outputs(artifact: Path):
    model, _ = load_ranker(artifact)
    batch = AutoTokenizer.from_pretrained(artifact / "tokenizer")(
        QUERIES, TITLES, truncation=True, max_length=64, padding=True, return_tensors="pt")
    with torch.no_grad():
        relevance, engagement = model(**batch)
    return {k: v.numpy() for k, v in batch.items()}, relevance.numpy(), engagement.numpy()


def test_encoder_fp32_matches_sentence_transformers(tiny_repo):
    from sentence_transformers import SentenceTransformer

    from training.base_model import base_model_path

    _, repo = tiny_repo
    encoder = Encoder(OnnxLocalBackend(repo, intra_op_threads=1), repo, "encoder", max_tokens=64, sub_batch=3, dim=384)
    reference = SentenceTransformer(base_model_path(), device="cpu")
    reference.max_seq_length = 64
    expected = reference.encode(TITLES + QUERIES, normalize_embeddings=True)
    assert np.abs(encoder.encode(TITLES + QUERIES) - expected).max() < 1e-4


def test_ranker_fp32_onnx_matches_torch_and_int8_stays_close(tiny_repo):
    artifact, repo = tiny_repo
    inputs, relevance, engagement = _torch_outputs(artifact)
    fp32 = ort.InferenceSession(str(repo / "ranker" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    rel, eng = fp32.run(None, inputs)
    assert np.abs(rel - relevance).max() < 1e-4
    assert np.abs(eng - engagement).max() < 1e-4
    int8 = OnnxLocalBackend(repo, intra_op_threads=1).infer("ranker", inputs)  # newest version = int8
    assert np.abs(int8["relevance_logits"] - relevance).max() < 0.5


def test_pair_scorer_serves_the_newest_version_with_ordered_probabilities(tiny_repo):
    _, repo = tiny_repo
    scorer = PairScorer(OnnxLocalBackend(repo, intra_op_threads=1), repo, "ranker", max_tokens=64, sub_batch=2)
    heads = scorer.score(QUERIES, TITLES)
    p1, p2 = heads.relevance.p_partial_or_better, heads.relevance.p_exact
    assert scorer.model_version == "ranker:2"
    assert np.all(p2 <= p1) and np.all(p2 >= 0) and np.all(p1 <= 1)
    assert np.all((heads.ctr >= 0) & (heads.ctr <= 1)) and np.all((heads.cvr >= 0) & (heads.cvr <= 1))


def test_torch_scorer_reads_an_artifact_as_the_served_scorer_reads_its_export(tiny_repo):
    from training.cross_encoder.predict import TorchPairScorer

    artifact, _ = tiny_repo
    _, relevance, engagement = _torch_outputs(artifact)
    heads = TorchPairScorer(artifact, batch_size=3).score(QUERIES, TITLES)  # batches of 3: order must survive
    np.testing.assert_allclose(heads.relevance.p_partial_or_better, 1 / (1 + np.exp(-relevance[:, 0])), atol=1e-5)
    np.testing.assert_allclose(heads.relevance.p_exact, 1 / (1 + np.exp(-relevance[:, 1])), atol=1e-5)
    np.testing.assert_allclose(heads.ctr, 1 / (1 + np.exp(-engagement[:, 0])), atol=1e-5)
    with pytest.raises(ValueError, match="not trained on 'item_item'"):
        TorchPairScorer(artifact).score(QUERIES, TITLES, task="item_item")


def test_multitask_ranker_trains_on_three_tasks_and_routes_by_task_id(tmp_path):
    from training.cross_encoder.predict import TorchPairScorer

    tasks = ["query_item", "item_item", "query_query"]
    config = RankerConfig(epochs=1, batch_size=8, tasks=tasks, routing="mhp", private_layers=2)
    artifact = train_ranker_from_files(data_dir=DATA, out_dir=tmp_path / "mt", config=config, limit=8)
    scorer = TorchPairScorer(artifact)
    assert scorer.card["private_layers"] == 2 and scorer.card["train_pairs"] == 24
    by_task = {task: scorer.score(QUERIES, TITLES, task=task).relevance.expected for task in tasks}
    # same text, different private tower and head per task: different scores
    assert not np.allclose(by_task["query_item"], by_task["item_item"])
