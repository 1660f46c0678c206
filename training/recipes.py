"""End-to-end training recipes behind ``shoprank train …`` (data → rows → model → artifacts)."""

from __future__ import annotations

from pathlib import Path

from training.cross_encoder.train import RankerConfig, train_ranker
from training.data import labelled_pairs, split_frame
from training.tasks import query_item_rows


def train_first_ranker(*, data_dir: Path, out_dir: Path, config: RankerConfig, limit: int | None = None) -> Path:
    """The foundation ranker: query–item pairs of the train split, ordinal + engagement heads."""
    rows = query_item_rows(split_frame(labelled_pairs(data_dir), "train"))
    if limit:
        rows = rows.sample(n=min(limit, len(rows)), random_state=config.seed)
    return train_ranker(rows, config, out_dir)
