"""``shoprank train recipe`` end to end on a slice of the real data: every step, the exported repository
served by the service's own inference seam, resuming a finished run, and re-exporting it below the latest
version under non-default model names (each step then writes that version's cards, and no other's)."""

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from service.catalogue import HOME_DEPOT_ZIP
from service.inference.factory import make_backend, make_encoder, make_pair_scorer
from service.settings import Settings
from training.biencoder.adaptor import AdaptorConfig
from training.biencoder.train import StudentConfig
from training.cross_encoder.train import RankerConfig
from training.data import split_of
from training.first_phase.step import FirstPhaseRun
from training.first_phase.train import FirstPhaseConfig
from training.recipe import ALL_TASKS, RecipePreset, apply_teacher_labels, run_recipe

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

TINY = RecipePreset("tiny", RankerConfig(tasks=ALL_TASKS, batch_size=8, max_tokens=32), 16,
                    StudentConfig.quick(max_rows_per_dataset=24, batch_size=8, max_steps=3, max_seq_length=24),
                    distillation_pairs=24, parity_samples=8,
                    ranker_second_pass=RankerConfig(tasks=ALL_TASKS, batch_size=8, max_tokens=32, lr=2e-5, seed=14),
                    adaptor=AdaptorConfig(epochs=2, catalogue_sample=300, max_queries=40),
                    first_phase=FirstPhaseRun(FirstPhaseConfig(hidden=(16,), epochs=2), max_train_pairs=200))


@pytest.fixture(scope="module")
def data_slice(tmp_path_factory) -> Path:
    """The vendored file cut to 60 queries of each split (real rows, the same format and split rule)."""
    with zipfile.ZipFile(ROOT / "data" / HOME_DEPOT_ZIP) as zf, zf.open("train.csv") as fh:
        raw = pd.read_csv(fh, encoding="latin-1", dtype={"product_uid": str})
    split = raw["search_term"].astype(str).map(split_of)
    keep = set()
    for name in ("train", "validation", "test"):
        keep |= set(raw.loc[split == name, "search_term"].drop_duplicates().head(60))
    data_dir = tmp_path_factory.mktemp("data")
    (data_dir / HOME_DEPOT_ZIP).parent.mkdir(parents=True)
    with zipfile.ZipFile(data_dir / HOME_DEPOT_ZIP, "w") as zf:
        zf.writestr("train.csv", raw[raw["search_term"].isin(keep)].to_csv(index=False).encode("latin-1"))
    return data_dir


def _cards(repo: Path, version: int) -> dict:
    return {model: json.loads((repo / model / str(version) / "shoprank.json").read_text()) for model in NAMES}


NAMES = ("student_encoder", "unified_ranker", "phase_one")  # not the defaults: the recipe must use the settings'


def test_recipe_trains_exports_serves_resumes_and_reexports_below_the_latest(tmp_path, data_slice):
    settings = Settings(data_dir=data_slice, state_dir=tmp_path / "state", inference="embedded",
                        kafka_bootstrap=None, redis_url=None, embedding_dim=64, encoder_model=NAMES[0],
                        ranker_model=NAMES[1], first_phase_model=NAMES[2])
    run = run_recipe(preset=TINY, work_dir=tmp_path / "run", version=3, settings=settings)

    assert all(run.seconds[s] > 0 for s in ("ranker", "ranker (second pass)", "distillation scores", "student",
                                            "adaptor", "export", "parity", "calibrate", "first phase"))
    adaptor = json.loads((tmp_path / "run" / "student-adapted" / "shoprank_student.json").read_text())["adaptor"]
    assert len(adaptor["epoch_losses"]) == 2 and adaptor["queries"] <= 40
    assert [row["epoch"] for row in adaptor["validation"]] == [0, 1, 2]  # validation recall logged, not selected on
    repo = tmp_path / "run" / "model_repo"
    assert sorted(p.name for p in repo.iterdir()) == sorted(NAMES)  # nothing under the default names
    assert {p.name for p in (repo / "unified_ranker" / "3").glob("*.onnx")} == {"model.onnx", "model.fp32.onnx"}
    parity = run.figures["parity"]
    assert parity["encoder_fp32_min_cosine"] > 0.9999 and parity["encoder_int8_min_cosine"] > 0.95
    assert parity["ranker_fp32_max_abs_logit_diff"] < 1e-3 and parity["ranker_int8_max_abs_logit_diff"] < 0.5
    # the int8 encoder is served only at or above the floor; below it the fp32 export is, and the card says so
    gate = _cards(repo, 3)["student_encoder"]["precision_gate"]
    served_int8 = parity["encoder_int8_min_cosine"] >= TINY.encoder_int8_floor
    assert gate["served"] == ("int8" if served_int8 else "fp32") == _cards(repo, 3)["student_encoder"]["precision"]
    assert {p.name for p in (repo / "student_encoder" / "3").glob("*.onnx")} == (
        {"model.onnx", "model.fp32.onnx"} if served_int8 else {"model.onnx"})
    first_phase = repo / "phase_one" / "3"
    assert (first_phase / "model.onnx").exists() and (repo / "phase_one" / "config.pbtxt").exists()
    fp_card = json.loads((first_phase / "shoprank.json").read_text())
    assert fp_card["kind"] == "first_phase" and fp_card["ranker"] == "unified_ranker:3"
    assert fp_card["encoder"] == "student_encoder:3"
    assert fp_card["calibration"]["min_relevance"] == run.figures["first_phase_floor"]  # the step fits its floor
    assert fp_card["training"]["epochs_run"] == 2 and fp_card["parity"]["max_abs_diff_relevance_logits"] < 1e-4
    assert run.figures["first_phase"]["fidelity"]["pairs"] > 0
    assert "student encoder (student_encoder:3, 64-d)" in run.table and "| ranker (unified_ranker:3) |" in run.table
    assert "| first phase alone (phase_one:3, over student_encoder:3 vectors) |" in run.table
    assert 0.0 < json.loads((first_phase / "shoprank.json").read_text())["evaluation"]["ndcg10"] <= 1.0
    assert (tmp_path / "run" / "recipe.md").read_text().startswith("# Recipe run (tiny)")

    # The exported versions are what the service loads: the student's card, the ranker's calibrated floor.
    serve = settings.model_copy(update={"model_repo": repo})  # version 3 is the latest: what the service loads
    backend = make_backend(serve)
    encoder, scorer = make_encoder(backend, serve), make_pair_scorer(backend, serve)
    assert encoder.card["matryoshka_dims"] == [384, 256, 128, 64] and encoder.card["recipe"]["preset"] == "tiny"
    assert encoder.card["source"].endswith("+ catalogue-softmax adaptor")  # the exported encoder is the adapted one
    vectors = encoder.encode(["cordless drill", "deck paint"])
    assert vectors.shape == (2, 64) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert scorer.relevance_floor(default=-1.0) == run.figures["calibration"]["min_relevance"]
    assert scorer.tasks() == ALL_TASKS
    # the served ranker is the second pass, which continued from the first
    assert scorer.card["training"]["init_from"] == str(tmp_path / "run" / "ranker") and scorer.card["training"]["seed"] == 14
    assert 0.0 < scorer.card["evaluation"]["ndcg10"] <= 1.0 and encoder.card["evaluation"]["split"] == "test"

    again = run_recipe(preset=TINY, work_dir=tmp_path / "run", version=3, settings=settings)
    steps = ["ranker", "ranker (second pass)", "distillation scores", "student", "adaptor", "export", "parity",
             "calibrate", "first phase"]
    assert again.resumed == steps and all(again.seconds[s] == run.seconds[s] for s in steps)
    assert json.loads((tmp_path / "run" / "recipe.json").read_text())["preset"] == "tiny"

    # Exporting the finished run as version 2, BELOW the latest (3), trains nothing; every later step addresses
    # version 2 (the service would load 3). A floor no int8 model reaches makes the gate ship fp32.
    before = _cards(repo, 3)
    older = run_recipe(preset=replace(TINY, encoder_int8_floor=1.01), work_dir=tmp_path / "run", version=2,
                       settings=settings)
    assert older.resumed == steps[:5]
    assert _cards(repo, 3) == before  # version 3's calibration and test figures are untouched
    cards = _cards(repo, 2)
    assert cards["unified_ranker"]["calibration"]["min_relevance"] == older.figures["calibration"]["min_relevance"]
    assert cards["unified_ranker"]["calibration"]["min_relevance"] == run.figures["calibration"]["min_relevance"]
    assert cards["phase_one"]["ranker"] == "unified_ranker:2" and cards["phase_one"]["encoder"] == "student_encoder:2"
    assert cards["phase_one"]["calibration"]["min_relevance"] == older.figures["first_phase_floor"]
    assert all(cards[m]["evaluation"]["split"] == "test" for m in NAMES)
    assert "| ranker (unified_ranker:2) |" in older.table and "(phase_one:2, over student_encoder:2 vectors)" in older.table
    assert cards["student_encoder"]["precision"] == "fp32" and cards["student_encoder"]["precision_gate"]["floor"] == 1.01
    assert {p.name for p in (repo / "student_encoder" / "2").glob("*.onnx")} == {"model.onnx"}
    assert older.figures["encoder_precision"]["served"] == "fp32"


def test_teacher_labels_replace_the_human_ratings_on_judged_pairs():
    pairs = pd.DataFrame({"query": ["a", "a", "b"], "title": ["x", "y", "x"], "relevance": [3.0, 1.0, 2.0],
                          "label": [2, 0, 1]})
    labels = pd.DataFrame({"query": ["a", "b", "b"], "title": ["y", "x", "x"], "expected": [2.0, 0.4, 0.4]})
    out = apply_teacher_labels(pairs, labels)
    assert list(zip(out["query"], out["title"])) == [("a", "y"), ("b", "x")]  # ("a", "x") was not judged
    assert out["relevance"].tolist() == [3.0, 1.4] and out["label"].tolist() == [2, 0]

