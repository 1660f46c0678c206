"""The served ranker on each entity-pair task of the evaluated split (report section 2).

The rows are built exactly as training builds them (``training/tasks.py``), but from the evaluated
split's judgements only: query_item (the labelled pairs), item_item and query_query (derived, raw
1–3 scale, same 3-level rule). Each task is scored with ``scorer.score(task=...)``, so a multi-task
ranker would get its task prefix or ``task_id``; a single-task ranker reads every task as query_item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from service.inference.models import PairHeads, PairScorer
from service.ranking.ordinal import OrdinalScores, label_from_raw
from training.evaluate.metrics import accuracy, macro_f1, rmse
from training.tasks import item_item_rows, query_item_rows, query_query_rows


def task_rows(pairs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The three tasks' rows of one split's pairs (derived tasks uncapped: every judgement of the split)."""
    return {
        "query_item": query_item_rows(pairs),
        "item_item": item_item_rows(pairs, max_rows=None),
        "query_query": query_query_rows(pairs, max_rows=None),
    }


def score_in_chunks(scorer: PairScorer, lefts: list[str], rights: list[str], *, task: str,
                    chunk: int = 1024) -> PairHeads:
    """``scorer.score`` over chunks with a progress bar; heads concatenated in input order."""
    parts = [scorer.score(lefts[i : i + chunk], rights[i : i + chunk], task=task)
             for i in tqdm(range(0, max(len(lefts), 1), chunk), desc=f"ranker {task}", unit="chunk", mininterval=5)]
    # (no pairs: one empty call, so the scorer's own empty result keeps the shapes)
    rel = OrdinalScores.concatenate([p.relevance for p in parts])
    return PairHeads(rel, np.concatenate([p.ctr for p in parts]), np.concatenate([p.cvr for p in parts]))


@dataclass(frozen=True)
class TaskFigures:
    task: str
    rows: int
    shares: tuple[float, float, float]  # irrelevant / partial / exact, human labels
    accuracy: float
    macro_f1: float
    rmse: float


def task_figures(task: str, rows: pd.DataFrame, relevance: OrdinalScores, *,
                 labels: np.ndarray | None = None) -> TaskFigures:
    """Figures of one task's scores; ``labels`` overrides the 3-level rule on E[y] (an ensemble's vote)."""
    target = rows["relevance"].to_numpy(float)
    truth = label_from_raw(target)
    shares = tuple(float((truth == c).mean()) for c in range(3))
    predicted = relevance.label_index if labels is None else labels
    return TaskFigures(task, len(rows), shares, accuracy(predicted, truth), macro_f1(predicted, truth),
                       rmse(relevance.raw_relevance, target))
