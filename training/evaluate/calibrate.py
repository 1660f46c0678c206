"""Calibrate the served ranker's relevance floor on the validation split and record it in its card.

int8 ranker scores shift with quantisation (shared/STACK.md), so the floor is fitted on the exact
model version that is served: the P(y ≥ partial) threshold maximising Youden's J (TPR − FPR) for
"partial or better" on validation. The test split is never used here.
"""

from __future__ import annotations

import json

import numpy as np

from service.inference.factory import make_backend, make_pair_scorer
from service.inference.repository import latest_version
from service.settings import Settings
from training.data import labelled_pairs, split_frame


def youden_threshold(p_relevant: np.ndarray, is_relevant: np.ndarray, *, grid: np.ndarray | None = None) -> tuple[float, float]:
    """(threshold, J) maximising TPR − FPR over the grid."""
    grid = np.round(np.arange(5, 99) / 100, 2) if grid is None else grid  # exact values: J is what gets served
    scores = [(p_relevant[is_relevant] >= t).mean() - (p_relevant[~is_relevant] >= t).mean() for t in grid]
    best = int(np.argmax(scores))
    return float(grid[best]), float(scores[best])


def calibrate_served_ranker(settings: Settings) -> dict:
    frame = split_frame(labelled_pairs(settings.data_dir), "validation")
    scorer = make_pair_scorer(make_backend(settings), settings)
    p1 = scorer.score(frame["query"].tolist(), frame["title"].tolist()).relevance.p_partial_or_better
    relevant = frame["label"].to_numpy() >= 1
    threshold, j = youden_threshold(p1, relevant)
    kept = p1 >= threshold
    calibration = {
        "min_relevance": threshold,
        "method": "Youden's J for P(y>=partial) vs label>=partial on the validation split",
        "youden_j": round(j, 4),
        "validation_kept": round(float(kept.mean()), 4),
        "validation_precision": round(float(relevant[kept].mean()), 4),
        "validation_irrelevant_removed": round(float((~kept[~relevant]).mean()), 4),
    }
    version = latest_version(settings.model_repo, settings.ranker_model)
    card_path = version.path / "shoprank.json"
    card = json.loads(card_path.read_text())
    card["calibration"] = calibration
    card_path.write_text(json.dumps(card, indent=2))
    return calibration
