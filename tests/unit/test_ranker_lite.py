"""The layer-dropped second phase: the served ranker rebuilt from its int8 ONNX file, layers dropped, a few
distillation steps, and an export the service scores unchanged."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from transformers import AutoTokenizer

from service.inference.models import PairScorer
from service.inference.onnx_local import OnnxLocalBackend
from service.inference.repository import latest_version
from training.base_model import base_model_path
from training.cross_encoder.distill import LiteConfig, distil_lite_ranker, distillation_loss, pearson_loss
from training.cross_encoder.layer_drop import drop_layers, ranker_from_onnx, write_artifact
from training.cross_encoder.train import load_ranker
from training.export.onnx_export import export_ranker

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2] / "model_repo"
QUERIES = ["angle bracket", "deck over", "cordless drill", "rain shower head"]
TITLES = ["Simpson Strong-Tie 12-Gauge Angle", "BEHR Premium Textured DeckOver 1-gal. Wood and Concrete Coating",
          "Hampton Bay Patio Dining Chairs (2-Pack)", "Delta Vero 1-Handle Shower Only Faucet Trim Kit in Chrome"]
NAMES = (["input_ids", "attention_mask", "token_type_ids"], ["relevance_logits", "engagement_logits"])


@pytest.fixture(scope="module")
def served():
    version = latest_version(REPO, "ranker")
    model, card = ranker_from_onnx(version.path)
    prefix = card["task_prefixes"].get("query_item", "")
    batch = AutoTokenizer.from_pretrained(base_model_path())([prefix + q for q in QUERIES], TITLES, truncation=True,
                                                             max_length=64, padding=True, return_tensors="np")
    feeds = {name: batch[name].astype(np.int64) for name in NAMES[0]}
    shipped = ort.InferenceSession(str(version.onnx_path), providers=["CPUExecutionProvider"]).run(NAMES[1], feeds)
    return version, model, feeds, shipped


def _run(path: Path, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == NAMES[0]
    assert [o.name for o in session.get_outputs()] == NAMES[1]
    return session.run(NAMES[1], feeds)


def test_the_rebuilt_ranker_requantises_to_the_shipped_model(served, tmp_path):
    _, model, feeds, shipped = served
    with torch.inference_mode():
        rebuilt = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    # fp32 against int8: the activations' dynamic quantisation alone moves logits by a few tenths
    for ours, theirs in zip(rebuilt, shipped):
        assert np.abs(ours.numpy() - theirs).max() < 0.6
        assert np.corrcoef(ours.numpy()[:, 0], theirs[:, 0])[0, 1] > 0.95
    # quantising the dequantised weights again must give back the very int8 model that is served
    artifact = tmp_path / "rebuilt"
    write_artifact(model, {"tasks": model.tasks, "routing": "prefix", "max_tokens": 64,
                           "task_prefixes": {}}, artifact)
    again = export_ranker(artifact_dir=artifact, repo=tmp_path / "repo", version=1)
    for ours, theirs in zip(_run(again / "model.onnx", feeds), shipped):
        assert np.abs(ours - theirs).max() < 1e-4


def test_a_dropped_student_distils_loads_and_exports_with_the_ranker_signature(served, tmp_path):
    version, _, feeds, shipped = served
    targets = {"left": np.array(QUERIES * 4), "right": np.array(TITLES * 4), "task": np.array(["query_item"] * 16),
               "relevance_logits": np.tile(shipped[0], (4, 1)), "engagement_logits": np.tile(shipped[1], (4, 1))}
    config = LiteConfig(teacher=str(version.path), keep_layers=[0, 2, 4], epochs=1, batch_size=8, threads=1)
    artifact = distil_lite_ranker(targets, config, tmp_path / "student")
    model, meta = load_ranker(artifact)
    assert len(model.encoder.encoder.layer) == 3 and meta["kept_layers"] == [0, 2, 4] and meta["steps"] == 2
    out = export_ranker(artifact_dir=artifact, repo=tmp_path / "repo", version=1)
    with torch.inference_mode():
        reference = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})[0].numpy()
    assert np.abs(_run(out / "model.fp32.onnx", feeds)[0] - reference).max() < 1e-4
    # the service scores it as it scores the ranker: same names, same prefixes from the card
    scorer = PairScorer(OnnxLocalBackend(tmp_path / "repo", intra_op_threads=1), tmp_path / "repo", "ranker",
                        max_tokens=64, sub_batch=3)
    heads = scorer.score(QUERIES, TITLES, task="query_item")
    assert heads.relevance.expected.shape == (4,) and np.all((heads.ctr > 0) & (heads.ctr < 1))


def test_without_a_scores_file_the_teacher_onnx_scores_each_batch(served, tmp_path):
    version = served[0]
    pairs = {"left": np.array(QUERIES), "right": np.array(TITLES),
             "task": np.array(["query_item"] * 4)}
    config = LiteConfig(teacher=str(version.path), keep_layers=[0, 1], epochs=1, batch_size=4, threads=1)
    meta = load_ranker(distil_lite_ranker(pairs, config, tmp_path / "online"))[1]
    assert meta["targets"] == "teacher ONNX per batch" and meta["steps"] == 1 and meta["final_loss"] > 0


def test_drop_layers_refuses_bad_indices(served):
    model = ranker_from_onnx(served[0].path)[0]
    for keep in ([], [2, 1], [0, 6]):
        with pytest.raises(ValueError, match="keep"):
            drop_layers(model, keep)


def test_distillation_losses():
    teacher = torch.tensor([[1.0, -1.0], [2.0, 0.5], [-0.5, -2.0]])
    assert distillation_loss(teacher, teacher, teacher, teacher).item() == 0.0
    assert distillation_loss(teacher + 1, teacher, teacher, teacher).item() == pytest.approx(1.0)
    # Pearson ignores scale and shift, MSE does not
    assert pearson_loss(3 * teacher + 2, teacher).item() == pytest.approx(0.0, abs=1e-6)
    assert pearson_loss(-teacher, teacher).item() == pytest.approx(2.0, abs=1e-6)
