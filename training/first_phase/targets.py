"""Distillation targets: the SERVED ranker's four raw logits on (task, left, right) pairs.

The first phase predicts the ranker's outputs as such (two cumulative relevance logits, CTR and CVR
logits), so its scores fill the same response fields; the targets therefore keep the raw logits, not
only the expected relevance. Scoring goes through ``service.inference`` (the model repository's ranker,
embedded ONNX Runtime or Triton), so they are the deployed precision's (int8) outputs.

Saved as ``.npz`` with arrays ``left``, ``right``, ``task`` (str), ``relevance_logits`` [n, 2],
``engagement_logits`` [n, 2], plus ``relevance`` (human mean 1–3, NaN when unjudged), ``source`` and
``ranker`` (the version that scored them; a cached file is reused only for the same version); written
atomically (temp file + rename) because other jobs wait for the file to appear.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from service.inference.models import PairScorer

log = logging.getLogger(__name__)

LOGITS = ("relevance_logits", "engagement_logits")


class LogitScorer(PairScorer):
    """The served pair scorer, returning the model's raw output logits instead of the read-outs."""

    def logits(self, lefts: Sequence[str], rights: Sequence[str], *, task: str) -> dict[str, np.ndarray]:
        if not lefts:
            return {name: np.zeros((0, 2), np.float32) for name in LOGITS}
        card = self.card
        prefix = card.get("task_prefixes", {}).get(task, "")
        lefts = [prefix + t for t in lefts] if prefix else list(lefts)
        extra = None
        if "task_id" in self.backend.model_info(self.model).input_names:
            extra = {"task_id": np.full(len(lefts), card.get("tasks", ["query_item"]).index(task), dtype=np.int64)}
        out = self._run_sorted(self.tokenizer(), lefts, list(rights), extra)
        return {name: out[name].astype(np.float32) for name in LOGITS}


def served_logit_scorer(settings) -> LogitScorer:
    from service.inference.factory import make_backend

    return LogitScorer(make_backend(settings), settings.model_repo, settings.ranker_model,
                       max_tokens=settings.pair_max_tokens, sub_batch=settings.inference_sub_batch)


def score_frame(scorer: LogitScorer, frame: pd.DataFrame, *, chunk: int = 512) -> pd.DataFrame:
    """``frame`` (task, left, right, …) with the ranker's ``relevance_logits`` / ``engagement_logits`` added."""
    rel = np.zeros((len(frame), 2), np.float32)
    eng = np.zeros((len(frame), 2), np.float32)
    for task, positions in frame.groupby("task", sort=False).indices.items():
        lefts, rights = frame["left"].iloc[positions].tolist(), frame["right"].iloc[positions].tolist()
        for start in tqdm(range(0, len(positions), chunk), desc=f"ranker {task}", unit="chunk", mininterval=30):
            part = scorer.logits(lefts[start:start + chunk], rights[start:start + chunk], task=task)
            rows = positions[start:start + chunk]
            rel[rows], eng[rows] = part["relevance_logits"], part["engagement_logits"]
    return frame.assign(relevance_logits=list(rel), engagement_logits=list(eng))


def save_scores(path: Path, frame: pd.DataFrame, *, ranker: str) -> Path:
    """Write the scored pairs atomically: a half-written file is never visible under ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez_compressed(
        tmp, left=frame["left"].to_numpy().astype(str), right=frame["right"].to_numpy().astype(str),
        task=frame["task"].to_numpy().astype(str),
        relevance_logits=np.stack(frame["relevance_logits"].to_list()).astype(np.float32).reshape(-1, 2),
        engagement_logits=np.stack(frame["engagement_logits"].to_list()).astype(np.float32).reshape(-1, 2),
        relevance=frame["relevance"].to_numpy(np.float64), source=frame["source"].to_numpy().astype(str),
        ranker=np.array(ranker))
    os.replace(tmp, path)
    return path


def load_scores(path: Path) -> pd.DataFrame:
    """The scored pairs of ``save_scores`` as a frame (logit columns as [n, 2] rows); ``attrs["ranker"]``
    names the ranker version that scored them."""
    with np.load(path, allow_pickle=False) as data:
        frame = pd.DataFrame({name: data[name] for name in ("task", "left", "right")})
        for name in LOGITS:
            frame[name] = list(data[name])
        frame["relevance"] = data["relevance"] if "relevance" in data.files else np.nan
        frame["source"] = data["source"] if "source" in data.files else "labelled"
        frame.attrs["ranker"] = str(data["ranker"]) if "ranker" in data.files else None
    return frame


def scored(scorer: LogitScorer, frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Scores of ``frame`` from ``path`` when that file holds exactly these pairs scored by this ranker version,
    else scored now and saved there."""
    if path.exists():
        cached = load_scores(path)
        if (cached.attrs["ranker"] == scorer.model_version and len(cached) == len(frame)
                and (cached[["task", "left", "right"]].to_numpy() == frame[["task", "left", "right"]].to_numpy()).all()):
            log.info("first phase: %s scores of %d pairs from %s", scorer.model_version, len(frame), path)
            return cached
    log.info("first phase: scoring %d pairs with %s → %s", len(frame), scorer.model_version, path)
    out = score_frame(scorer, frame.reset_index(drop=True))
    save_scores(path, out, ranker=scorer.model_version)
    return out
