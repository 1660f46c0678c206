"""Trained-but-not-served rankers on each task (report section 2): routing variants, single-task
baselines trained the same way, and the majority-vote ensemble of the routing variants.

Each artifact under ``artifacts/`` (``model.pt`` + ``config.json``, what ``shoprank train ranker``
writes) is scored in torch fp32 (``TorchPairScorer``) on the tasks it was trained on. The variants
that share a task set and differ in routing are combined per task with
``training.cross_encoder.ensemble`` (vote for the label, mean cumulative probabilities for NDCG/RMSE).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from training.cross_encoder.ensemble import ensemble
from training.cross_encoder.predict import TorchPairScorer
from training.evaluate.metrics import ndcg_at_k
from training.evaluate.task_eval import TaskFigures, score_in_chunks, task_figures

log = logging.getLogger(__name__)


@dataclass
class RankerFigures:
    name: str
    routing: str
    tasks: list[str]
    train_pairs: int | None
    train_seconds: float | None
    by_task: dict[str, TaskFigures] = field(default_factory=dict)
    ndcg10: float | None = None  # query_item re-ranking, when trained on it


def ranker_artifacts(artifacts: Path) -> list[Path]:
    return sorted(p for p in artifacts.glob("*") if p.is_dir() and TorchPairScorer.is_artifact(p))


def _ndcg(rows: pd.DataFrame, expected) -> float:
    return ndcg_at_k(rows.assign(query=rows["left"], _score=expected), "_score")


def compare_rankers(paths: list[Path], rows_by_task: dict[str, pd.DataFrame]) -> list[RankerFigures]:
    """Per-task figures of every artifact, then one ensemble row per task set with ≥ 2 routings."""
    figures, scores = [], {}
    for path in paths:
        scorer = TorchPairScorer(path)
        card = scorer.card
        result = RankerFigures(path.name, card["routing"] if len(card["tasks"]) > 1 else "single-task",
                               list(card["tasks"]), card.get("train_pairs"), card.get("train_seconds"))
        for task in card["tasks"]:
            rows = rows_by_task[task]
            if rows.empty:
                continue
            heads = score_in_chunks(scorer, rows["left"].tolist(), rows["right"].tolist(), task=task)
            scores[(path.name, task)] = heads.relevance
            result.by_task[task] = task_figures(task, rows, heads.relevance)
            if task == "query_item":
                result.ndcg10 = _ndcg(rows, heads.relevance.expected)
        log.info("ranker %s: %s", path.name, {t: round(f.accuracy, 3) for t, f in result.by_task.items()})
        figures.append(result)
    groups: dict[tuple[str, ...], list[RankerFigures]] = {}
    for f in figures:
        if len(f.tasks) > 1:
            groups.setdefault(tuple(f.tasks), []).append(f)
    for tasks, members in groups.items():
        if len({m.routing for m in members}) < 2:
            continue
        combined = RankerFigures(f"ensemble of {', '.join(m.name for m in members)}", "majority vote",
                                 list(tasks), None, None)
        for task in tasks:
            if rows_by_task[task].empty:
                continue
            voted = ensemble([scores[(m.name, task)] for m in members])
            combined.by_task[task] = task_figures(task, rows_by_task[task], voted.scores, labels=voted.labels)
            if task == "query_item":
                combined.ndcg10 = _ndcg(rows_by_task[task], voted.scores.expected)
        figures.append(combined)
    return figures
