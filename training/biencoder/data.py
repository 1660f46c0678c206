"""The student's three training sets, built from the train split only.

* ``click_pairs`` — (query, clicked title) positives for MultipleNegativesRankingLoss. Clicks are
  SIMULATED (training/engagement.py): a pair counts as clicked when its position-debiased CTR is
  at least ``ctr_threshold`` (default 0.4: 31k of 58.7k train pairs; 71 % exact, 2 % irrelevant).
* ``binary_label_pairs`` — the 3-level labels binarised for (Online)ContrastiveLoss: exact → 1,
  irrelevant → 0, partial dropped (too ambiguous to call either).
* ``kd_pairs`` — (query, title, teacher score) for the distillation loss; the teacher score is
  the ranker's expected relevance on 1–3, read from a file written by ``teacher_scores``.
"""

from __future__ import annotations

import pandas as pd
from datasets import Dataset

from service.ranking.ordinal import label_from_raw
from training.data import sample_rows


def click_pairs(rows: pd.DataFrame, *, ctr_threshold: float = 0.4, max_rows: int | None = None, seed: int = 13) -> Dataset:
    """query_item rows (with simulated ``ctr``) → Dataset(anchor, positive)."""
    clicked = rows[(rows["ctr"] >= ctr_threshold) & (rows.get("task", "query_item") == "query_item")]
    clicked = sample_rows(clicked.drop_duplicates(["left", "right"]), max_rows, seed=seed)
    return Dataset.from_dict({"anchor": clicked["left"].tolist(), "positive": clicked["right"].tolist()})


def binary_label_pairs(rows: pd.DataFrame, *, max_rows: int | None = None, seed: int = 13) -> Dataset:
    """Rows with raw ``relevance`` → Dataset(sentence1, sentence2, label) with exact → 1, irrelevant → 0."""
    label = label_from_raw(rows["relevance"].to_numpy(float))
    kept = rows.assign(label=label)[label != 1]
    kept = sample_rows(kept, max_rows, seed=seed)
    return Dataset.from_dict({"sentence1": kept["left"].tolist(), "sentence2": kept["right"].tolist(),
                              "label": (kept["label"] == 2).astype(int).tolist()})


def kd_pairs(teacher: pd.DataFrame, *, max_rows: int | None = None, seed: int = 13) -> Dataset:
    """Teacher scores (``left, right, score``) → Dataset(sentence1, sentence2, score)."""
    kept = sample_rows(teacher.drop_duplicates(["left", "right"]), max_rows, seed=seed)
    return Dataset.from_dict({"sentence1": kept["left"].tolist(), "sentence2": kept["right"].tolist(),
                              "score": kept["score"].astype(float).tolist()})
