"""Fit the first-phase MLP on the ranker's logits; keep the epoch best on the validation split's fidelity.

Each example is (left vector, right vector, task) → the ranker's four logits. Item vectors at serving
time come from the index's int8 full-vector store, so with probability ``int8_share`` an item side is
replaced by its int8 round trip (the store's own quantiser) — the model then sees both.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch

from service.ranking.ordinal import from_cumulative_logits
from training.first_phase.model import FirstPhaseModel, FirstPhaseShape, distillation_loss
from training.names import TASKS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirstPhaseConfig:
    hidden: tuple[int, ...] = (256,)
    task_dim: int = 16
    dropout: float = 0.1
    loss: str = "mse"  # or "bce" (soft targets on the probabilities)
    engagement_weight: float = 0.5
    epochs: int = 12
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    int8_share: float = 0.5  # probability that an item side is the int8 store's round trip
    threads: int = 2
    seed: int = 13
    max_seconds: float = 240.0  # stop after this much training time (2 cores)

    def shape(self, dim: int) -> FirstPhaseShape:
        return FirstPhaseShape(dim=dim, tasks=len(TASKS), task_dim=self.task_dim, hidden=tuple(self.hidden),
                               dropout=self.dropout)


@dataclass
class PairSet:
    """One split's pairs as tensors: vectors (and their int8 round trips), task ids, teacher logits."""

    frame: pd.DataFrame
    left: np.ndarray
    right: np.ndarray
    left_int8: np.ndarray | None = None
    right_int8: np.ndarray | None = None
    task_id: np.ndarray = field(init=False)
    relevance_logits: np.ndarray = field(init=False)
    engagement_logits: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.task_id = self.frame["task"].map({t: i for i, t in enumerate(TASKS)}).to_numpy(np.int64)
        self.relevance_logits = np.stack(self.frame["relevance_logits"].to_list()).astype(np.float32)
        self.engagement_logits = np.stack(self.frame["engagement_logits"].to_list()).astype(np.float32)


def predict(model: FirstPhaseModel, left: np.ndarray, right: np.ndarray, task_id: np.ndarray,
            *, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(relevance_logits, engagement_logits) as numpy, in eval mode."""
    model.eval()
    rel, eng = [], []
    with torch.no_grad():
        for s in range(0, len(left), batch):
            r, e = model(*(torch.from_numpy(np.array(x[s:s + batch])) for x in (left, right, task_id)))
            rel.append(r.numpy())
            eng.append(e.numpy())
    empty = np.zeros((0, 2), np.float32)
    return (np.concatenate(rel) if rel else empty), (np.concatenate(eng) if eng else empty)


def fidelity(pairs: PairSet, relevance_logits: np.ndarray, engagement_logits: np.ndarray) -> dict:
    """Agreement with the teacher: Pearson/Spearman of expected relevance (all pairs, and per task), logit MSE."""
    from scipy.stats import pearsonr, spearmanr

    mine = from_cumulative_logits(relevance_logits).expected
    teacher = from_cumulative_logits(pairs.relevance_logits).expected
    out = {"pairs": len(mine), "pearson": float(pearsonr(mine, teacher)[0]),
           "spearman": float(spearmanr(mine, teacher)[0]),
           "mse_relevance_logits": float(np.mean((relevance_logits - pairs.relevance_logits) ** 2)),
           "mse_engagement_logits": float(np.mean((engagement_logits - pairs.engagement_logits) ** 2))}
    for i, task in enumerate(TASKS):
        rows = pairs.task_id == i
        if rows.sum() > 2:
            out[f"pearson_{task}"] = float(pearsonr(mine[rows], teacher[rows])[0])
    return out


def fit_first_phase(train: PairSet, validation: PairSet, config: FirstPhaseConfig) -> tuple[FirstPhaseModel, dict]:
    """Train; returns the model at the epoch with the best validation relevance-logit MSE, and the figures."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    model = FirstPhaseModel(config.shape(train.left.shape[1]))
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(train.left) / config.batch_size)))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
                                                   pct_start=0.1)
    tensors = {name: torch.from_numpy(np.array(getattr(train, name))) for name in
               ("left", "right", "task_id", "relevance_logits", "engagement_logits")}
    int8 = {name: torch.from_numpy(np.array(getattr(train, f"{name}_int8"))) for name in ("left", "right")
            if getattr(train, f"{name}_int8") is not None}
    # item sides: the right of query_item and item_item, the left of item_item
    item_side = {"left": torch.from_numpy(train.task_id == TASKS.index("item_item")),
                 "right": torch.from_numpy(train.task_id != TASKS.index("query_query"))}
    best, best_score, history, started = None, np.inf, [], time.time()
    for epoch in range(config.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(train.left)))
        total = 0.0
        for s in range(0, len(order), config.batch_size):
            idx = order[s:s + config.batch_size]
            sides = {}
            for name in ("left", "right"):
                x = tensors[name][idx]
                if name in int8 and config.int8_share > 0:
                    swap = item_side[name][idx] & (torch.rand(len(idx)) < config.int8_share)
                    x = torch.where(swap[:, None], int8[name][idx], x)
                sides[name] = x
            rel, eng = model(sides["left"], sides["right"], tensors["task_id"][idx])
            loss = distillation_loss(rel, eng, tensors["relevance_logits"][idx], tensors["engagement_logits"][idx],
                                     kind=config.loss, engagement_weight=config.engagement_weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        rel, eng = predict(model, validation.left, validation.right, validation.task_id)
        figures = fidelity(validation, rel, eng)
        history.append({"epoch": epoch + 1, "train_loss": round(total / len(order), 4),
                        "validation_pearson": round(figures["pearson"], 4),
                        "validation_mse_relevance_logits": round(figures["mse_relevance_logits"], 4)})
        log.info("first phase epoch %d: %s", epoch + 1, history[-1])
        if figures["mse_relevance_logits"] < best_score:
            best_score, best = figures["mse_relevance_logits"], copy.deepcopy(model.state_dict())
        if time.time() - started > config.max_seconds:
            log.info("first phase: stopping after %d epochs (%.0f s budget)", epoch + 1, config.max_seconds)
            break
    model.load_state_dict(best)
    model.eval()
    return model, {"config": asdict(config), "train_pairs": len(train.left), "epochs_run": len(history),
                   "train_seconds": round(time.time() - started, 1), "history": history}
