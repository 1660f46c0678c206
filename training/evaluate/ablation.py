"""Student ablations (report section 5): KD loss (MSE / CoSENT / Pearson) and training signals
(click only / + labels / + KD), each student measured on the evaluated split's query–item pairs.

The ablation students are budgeted trials of one preset (``make students``), so their rows differ only
in the ablated choice; longer runs found beside them are listed with their own step counts. The figures are pair-level, like the eBay paper's Table 1b/2: Pearson r of the
student's cosine with the ranker's expected relevance (did distillation transfer the teacher's
scores) and with the human mean, and re-ranking NDCG@10, at the full width and the served 64-d cut.
Catalogue recall is measured for the report's main student only (section 3): encoding all products
per student would cost minutes each on 2 cores. Threshold-based F1 is left out: a student has no
calibrated threshold, and fitting one on the evaluated split would tune on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.evaluate.embeddings import EmbeddingSet, student_embeddings
from training.evaluate.inventory import LABEL_ABLATION
from training.evaluate.metrics import ndcg_at_k, pearson_r


@dataclass(frozen=True)
class StudentFigures:
    name: str
    signals: str  # "click only" / "clicks + labels" / "clicks + labels + KD" / other combination
    kd_loss: str | None  # None when trained without KD
    steps: int | None
    by_dim: dict[int, dict[str, float]]  # dim → {"ndcg10", "r_ranker", "r_human"}


def signals_of(card: dict) -> str:
    combo = (card.get("use_clicks", True), card.get("use_labels", True), card.get("use_kd", True))
    return LABEL_ABLATION.get(combo, "+".join(n for n, on in zip(("clicks", "labels", "KD"), combo) if on))


def pair_figures(emb: EmbeddingSet, frame: pd.DataFrame, ranker_expected: np.ndarray,
                 dims: tuple[int, ...]) -> dict[int, dict[str, float]]:
    """NDCG@10 and Pearson r (vs the ranker and vs the human mean) of one encoder's pair cosines."""
    out = {}
    for d in dims:
        cosine = emb.pair_cosines(frame["query"], frame["item_id"], d)
        out[d] = {"ndcg10": ndcg_at_k(frame.assign(_cos=cosine), "_cos"),
                  "r_ranker": pearson_r(cosine, ranker_expected),
                  "r_human": pearson_r(cosine, frame["relevance"].to_numpy(float))}
    return out


def student_figures(students: dict[str, dict], *, artifacts: Path, frame: pd.DataFrame,
                    ranker_expected: np.ndarray, dims: tuple[int, ...],
                    known: dict[str, EmbeddingSet] | None = None) -> list[StudentFigures]:
    """Figures for each student dir (name → its card); ``known`` reuses embeddings already computed."""
    queries = sorted(frame["query"].unique())
    items = frame.drop_duplicates("item_id")
    rows = []
    for name, card in sorted(students.items()):
        emb = (known or {}).get(name)
        if emb is None:
            emb = student_embeddings(artifacts / name, queries=queries, item_ids=items["item_id"].tolist(),
                                     item_titles=items["title"].tolist())
        rows.append(StudentFigures(name, signals_of(card), card.get("kd_loss") if card.get("use_kd", True) else None,
                                   card.get("steps"), pair_figures(emb, frame, ranker_expected, dims)))
    return rows
