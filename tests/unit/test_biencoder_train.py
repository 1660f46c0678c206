"""Student training on a tiny slice (64 real train pairs, seconds): datasets, losses, output contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.biencoder.data import binary_label_pairs, click_pairs, kd_pairs
from training.biencoder.teacher_scores import load_teacher_scores, save_teacher_scores
from training.biencoder.train import StudentConfig, build_datasets, train_student

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    from training.data import labelled_pairs, split_frame
    from training.tasks import query_item_rows

    train = split_frame(labelled_pairs(DATA), "train")
    return query_item_rows(train).sample(n=64, random_state=0).reset_index(drop=True)


def test_click_label_and_kd_sets_follow_their_rules():
    rows = pd.DataFrame({"task": "query_item", "left": ["q1", "q1", "q2", "q3"], "right": ["a", "b", "c", "d"],
                         "relevance": [3.0, 2.0, 1.0, 2.67], "ctr": [0.9, 0.39, 0.4, 0.1]})
    clicks = click_pairs(rows, ctr_threshold=0.4)
    assert clicks["anchor"] == ["q1", "q2"] and clicks["positive"] == ["a", "c"]
    labels = binary_label_pairs(rows)
    assert list(zip(labels["sentence2"], labels["label"])) == [("a", 1), ("c", 0), ("d", 1)]  # partial "b" dropped
    kd = kd_pairs(pd.DataFrame({"left": ["q", "q"], "right": ["a", "a"], "score": [2.5, 2.5]}))
    assert len(kd) == 1 and kd["score"] == [2.5]


def test_teacher_scores_round_trip_npz_and_parquet(tmp_path):
    frame = pd.DataFrame({"left": ["cordless drill", "ñandú rug"], "right": ["DEWALT drill", "wool rug"], "score": [2.9, 1.4]})
    for name in ("t.npz", "t.parquet"):
        back = load_teacher_scores(save_teacher_scores(tmp_path / name, frame))
        pd.testing.assert_frame_equal(back, frame, check_dtype=False, atol=1e-6)
    np.savez(tmp_path / "bad.npz", left=np.array(["a"]), score=np.array([1.0]))
    with pytest.raises(ValueError, match="right"):
        load_teacher_scores(tmp_path / "bad.npz")


def test_ablation_switches_pick_the_datasets(rows):
    teacher = rows[["left", "right"]].assign(score=rows["relevance"])
    full = build_datasets(rows=rows, teacher=teacher, config=StudentConfig())
    assert set(full) == {"clicks", "labels", "kd"} and len(full["kd"]) == rows[["left", "right"]].drop_duplicates().shape[0]
    assert set(build_datasets(rows=rows, teacher=None, config=StudentConfig(use_kd=False, use_labels=False))) == {"clicks"}
    with pytest.raises(ValueError, match="teacher"):
        build_datasets(rows=rows, teacher=None, config=StudentConfig())
    capped = build_datasets(rows=rows, teacher=teacher, config=StudentConfig(max_rows_per_dataset=10, max_rows={"kd": 5}))
    assert {name: len(ds) for name, ds in capped.items()} == {"clicks": 10, "labels": 10, "kd": 5}


def test_wall_clock_budget_stops_training_after_its_time():
    from transformers import TrainerControl, TrainerState

    from training.biencoder.train import WallClockBudget

    budget = WallClockBudget(seconds=3600)
    control = budget.on_step_end(None, TrainerState(), TrainerControl())
    assert not control.should_training_stop and not budget.stopped_early
    budget.started -= 3601
    control = budget.on_step_end(None, TrainerState(), TrainerControl())
    assert control.should_training_stop and budget.stopped_early


@pytest.mark.slow
def test_tiny_student_trains_saves_and_exports(rows, tmp_path):
    from sentence_transformers import SentenceTransformer

    from training.base_model import base_model_path
    from training.biencoder.losses import pearson_distillation_loss

    rng = np.random.default_rng(0)
    teacher = rows[["left", "right"]].assign(score=np.clip(rows["relevance"] + rng.normal(0, 0.1, len(rows)), 1, 3))
    config = StudentConfig(epochs=2, batch_size=16, lr=3e-4, max_seq_length=24, logging_steps=5, threads=1)

    def kd_agreement(model) -> float:
        import torch

        left = model.encode(teacher["left"].tolist(), convert_to_tensor=True)
        right = model.encode(teacher["right"].tolist(), convert_to_tensor=True)
        cos = torch.nn.functional.cosine_similarity(left, right)
        return 1 - pearson_distillation_loss(cos, torch.tensor(teacher["score"].to_numpy())).item()

    before = kd_agreement(SentenceTransformer(base_model_path(), device="cpu"))
    out = train_student(rows=rows, teacher=teacher, config=config, out_dir=tmp_path / "student")

    meta = json.loads((out / "shoprank_student.json").read_text())
    assert meta["steps"] > 0 and set(meta["dataset_rows"]) == {"clicks", "labels", "kd"}
    student = SentenceTransformer(str(out), device="cpu")
    assert student.get_embedding_dimension() == 384
    assert kd_agreement(student) > before  # it learned the teacher's order on the pairs it saw

    from training.export.onnx_export import export_encoder

    version_dir = export_encoder(repo=tmp_path / "repo", name="student", source=str(out), int8=False,
                                 card={"source": "test student"})
    assert (version_dir / "model.onnx").exists() and (version_dir / "tokenizer.json").exists()
