"""End-to-end training recipes behind ``shoprank train …`` (data → rows → model → artifacts)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from training.cross_encoder.train import RankerConfig, train_ranker
from training.data import labelled_pairs, split_frame
from training.tasks import item_item_rows, query_item_rows, query_query_rows

TASK_ROWS = {"query_item": query_item_rows, "item_item": item_item_rows, "query_query": query_query_rows}


def ranker_rows(pairs: pd.DataFrame, *, tasks: list[str], limit: int | None = None, seed: int = 13) -> pd.DataFrame:
    """Training rows of ``tasks`` (default caps of training/tasks.py), each task sampled down to ``limit``."""
    unknown = [t for t in tasks if t not in TASK_ROWS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known: {', '.join(TASK_ROWS)}")
    frames = []
    for task in tasks:
        rows = TASK_ROWS[task](pairs)
        if limit and len(rows) > limit:
            rows = rows.sample(n=limit, random_state=seed)
        frames.append(rows)
    return pd.concat(frames, ignore_index=True)


def train_ranker_from_files(*, data_dir: Path, out_dir: Path, config: RankerConfig, limit: int | None = None) -> Path:
    """A ranker on ``config.tasks`` of the train split (the foundation ranker: query_item only), ordinal +
    engagement heads; ``limit`` caps every task's rows (a budgeted run)."""
    rows = ranker_rows(split_frame(labelled_pairs(data_dir), "train"), tasks=config.tasks, limit=limit,
                       seed=config.seed)
    return train_ranker(rows, config, out_dir)
