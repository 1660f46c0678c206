"""Distillation targets for the bi-encoder student: a trained ranker's expected relevance on train pairs.

ONE path (``distillation_targets``), used by ``shoprank train recipe`` and ``shoprank teacher-scores``:
the ranker ARTIFACT scored in torch at fp32 (``TorchPairScorer``), on a seeded sample of the train split's
distinct query–item pairs. Why fp32 and not the int8 ONNX the service runs: measured side by side on
validation (``python -m training.biencoder.target_precision``, 3,003 pairs / 484 queries, two seeds, the
ranker-lite export that holds both files), the two precisions' RMSE against the human mean were within
0.001 of each other (either way) and fp32's NDCG@10 was 0.0013–0.0014 higher on both seeds (docs/training.md);
and fp32 scores the ranker before it is exported, so the student does not wait for the export. int8 scored
1.4–2.3× faster, minutes at the recipe's 15,000 pairs: not worth targets that are at best equal.

Stored as ``.npz`` (arrays ``left``, ``right``, ``score``) or ``.parquet`` (same columns); ``score``
is E[rating] on the 1–3 scale (1 + P(y≥1) + P(y≥2)), so the human-label RMSE and the MSE-KD
range (1, 3) apply directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED = ("left", "right", "score")


def score_pairs(*, scorer, lefts: list[str], rights: list[str], task: str = "query_item",
                chunk: int = 2048) -> np.ndarray:
    """Expected relevance (1–3) of each pair from any pair scorer (torch ``TorchPairScorer`` or the service's)."""
    from training.evaluate.task_eval import score_in_chunks

    heads = score_in_chunks(scorer, lefts, rights, task=task, chunk=chunk)
    return heads.relevance.raw_relevance.astype(np.float32)


def save_teacher_scores(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame[list(REQUIRED)].to_parquet(path, index=False)
    else:
        np.savez_compressed(path, left=frame["left"].to_numpy().astype(str), right=frame["right"].to_numpy().astype(str),
                            score=frame["score"].to_numpy(np.float32))
    return path


def load_teacher_scores(path: Path) -> pd.DataFrame:
    """``left, right, score`` from a .npz or .parquet file (other columns are ignored)."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        with np.load(path, allow_pickle=False) as data:
            frame = pd.DataFrame({c: data[c] for c in data.files})
    missing = [c for c in REQUIRED if c not in frame]
    if missing:
        raise ValueError(f"{path} lacks teacher-score columns {missing} (needs {REQUIRED})")
    return frame.assign(left=frame["left"].astype(str), right=frame["right"].astype(str),
                        score=frame["score"].astype(float))[list(REQUIRED)]


def distillation_targets(ranker_dir: Path, pairs: pd.DataFrame, *, n: int | None, seed: int = 13,
                         threads: int = 2) -> pd.DataFrame:
    """``left, right, score``: the ranker artifact's fp32 expected rating (1–3) on at most ``n`` (None: all)
    distinct query–item pairs of ``pairs`` (the train split: never validation or test)."""
    from training.cross_encoder.predict import TorchPairScorer
    from training.data import sample_rows

    sample = sample_rows(pairs[["query", "title"]].drop_duplicates(), n, seed=seed)
    lefts, rights = sample["query"].tolist(), sample["title"].tolist()
    scorer = TorchPairScorer(ranker_dir, threads=threads)
    return pd.DataFrame({"left": lefts, "right": rights, "score": score_pairs(scorer=scorer, lefts=lefts, rights=rights)})
