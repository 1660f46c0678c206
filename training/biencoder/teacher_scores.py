"""Teacher scores for distillation: the served ranker's expected relevance over (query, title) pairs.

Stored as ``.npz`` (arrays ``left``, ``right``, ``score``) or ``.parquet`` (same columns); ``score``
is E[rating] on the 1–3 scale (1 + P(y≥1) + P(y≥2)), so the human-label RMSE and the MSE-KD
range (1, 3) apply directly. Scored through ``service.inference`` so the student learns from the
very model (and precision) the service runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED = ("left", "right", "score")


def score_pairs(*, scorer, lefts: list[str], rights: list[str], task: str = "query_item",
                chunk: int = 2048) -> np.ndarray:
    """Expected relevance (1–3) of each pair from a ``PairScorer`` (embedded ONNX Runtime or Triton)."""
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


def write_teacher_scores(*, settings, data_dir: Path, out_path: Path, split: str = "train") -> Path:
    """Score every distinct (query, title) pair of ``split`` with the served ranker and save them.

    Uses the service's own inference seam (``settings.model_repo`` / ``settings.ranker_model``,
    embedded ONNX Runtime or Triton), so the scores are those of the deployed precision (int8).
    """
    from service.inference.factory import make_backend, make_pair_scorer
    from training.data import labelled_pairs, split_frame

    pairs = split_frame(labelled_pairs(data_dir), split)[["query", "title"]].drop_duplicates()
    scorer = make_pair_scorer(make_backend(settings), settings)
    lefts, rights = pairs["query"].tolist(), pairs["title"].tolist()
    frame = pd.DataFrame({"left": lefts, "right": rights, "score": score_pairs(scorer=scorer, lefts=lefts, rights=rights)})
    return save_teacher_scores(out_path, frame)
