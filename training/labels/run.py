"""``shoprank label``: judge pairs with the teacher, report the label distribution, optionally move it.

Output columns: ``query, title, p_irrelevant, p_partial, p_exact, label, expected, soft, source``
(``expected`` on 0–2; add 1 for the 1–3 scale the ranker is trained on). Pairs the judge failed on
are dropped and counted in the report.

On this machine no LLM is reachable, so the shipped models use ``human_teacher_labels``: the
human mean rating as a soft label with the same columns. To use an LLM instead, point
``SHOPRANK_TEACHER_BASE_URL`` at any OpenAI-compatible server (vLLM, llama.cpp, OpenAI), set
``SHOPRANK_TEACHER_MODEL`` / ``SHOPRANK_TEACHER_API_KEY``, run ``label_pairs`` over the train
split, and train the ranker on ``1 + expected`` instead of the human ``relevance``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from service.ranking.ordinal import cumulative_targets
from training.labels.cache import JudgementCache
from training.labels.client import PairToJudge, TeacherClient
from training.labels.distribution import label_distribution, rethreshold_to_target, reweight_to_target
from training.labels.settings import TeacherSettings

log = logging.getLogger(__name__)
Adjust = Literal["none", "reweight", "rethreshold"]


def _frame(pairs: pd.DataFrame, probs: np.ndarray, soft: np.ndarray, source: str) -> pd.DataFrame:
    out = pairs[["query", "title"]].reset_index(drop=True).copy()
    out["p_irrelevant"], out["p_partial"], out["p_exact"] = probs[:, 0], probs[:, 1], probs[:, 2]
    out["label"] = probs.argmax(axis=1)
    out["expected"] = probs[:, 1] + 2 * probs[:, 2]
    out["soft"] = soft
    out["source"] = source
    return out


def human_teacher_labels(pairs: pd.DataFrame) -> pd.DataFrame:
    """The human mean rating (1–3) as soft labels: P(y≥1) = clip(r−1), P(y≥2) = clip(r−2).

    Its expectation is the human mean, so training on it is training on the ratings themselves.
    """
    cum = cumulative_targets(pairs["relevance"].to_numpy(float))
    probs = np.stack([1.0 - cum[:, 0], cum[:, 0] - cum[:, 1], cum[:, 1]], axis=1)
    return _frame(pairs, probs, np.ones(len(pairs), dtype=bool), "human")


def adjust_distribution(labels: pd.DataFrame, *, target, mode: Adjust) -> pd.DataFrame:
    """Move teacher labels to ``target`` shares (irrelevant, partial, exact); see ``distribution``."""
    if mode == "none":
        return labels
    probs = labels[["p_irrelevant", "p_partial", "p_exact"]].to_numpy(float)
    if mode == "reweight":
        probs = reweight_to_target(probs, target=target)
    elif mode == "rethreshold":
        hard, cuts = rethreshold_to_target(probs[:, 1] + 2 * probs[:, 2], target=target)
        log.info("re-threshold cut points on expected relevance: %.3f, %.3f", *cuts)
        probs = np.eye(3)[hard]
    else:
        raise ValueError(f"unknown adjustment {mode!r}")
    return _frame(labels, probs, labels["soft"].to_numpy(), labels["source"].iloc[0] if len(labels) else "llm")


def label_pairs(*, pairs: pd.DataFrame, client: TeacherClient, target=None, mode: Adjust = "none",
                progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Judge ``pairs`` (columns ``query, title`` and optional ``category``) → (labels, report)."""
    categories = pairs["category"] if "category" in pairs else [None] * len(pairs)
    todo = [PairToJudge(q, t, c) for q, t, c in zip(pairs["query"], pairs["title"], categories)]
    judgements = client.judge_many(todo, progress=progress)
    ok = np.array([j is not None for j in judgements], dtype=bool)
    probs = np.array([j.probs for j in judgements if j is not None], dtype=np.float64).reshape(-1, 3)
    soft = np.array([j.soft for j in judgements if j is not None], dtype=bool)
    labels = _frame(pairs[ok], probs, soft, f"llm:{client.model}")
    report = {
        "pairs": len(pairs),
        "judged": int(ok.sum()),
        "stats": {k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(client.stats).items() if k != "errors"},
        "first_errors": client.stats.errors[:5],
        "distribution_soft": label_distribution(probs),
        "distribution_hard": label_distribution(labels["label"].to_numpy()),
    }
    if mode != "none":
        labels = adjust_distribution(labels, target=target, mode=mode)
        report["adjusted"] = {"mode": mode, "target": list(map(float, target)),
                              "distribution_hard": label_distribution(labels["label"].to_numpy())}
    return labels, report


def label_split(*, teacher: TeacherSettings, data_dir: Path, split: str, out_path: Path, limit: int | None = None, seed: int = 13,
                target=None, mode: Adjust = "none", progress: bool = True) -> dict:
    """``shoprank label``: judge a split's (query, title) pairs with the configured LLM; write labels + report.

    Writes ``out_path`` (parquet, columns above) and ``out_path.with_suffix('.json')`` (the report,
    with the human labels' distribution beside the teacher's for the same pairs).
    """
    from training.data import labelled_pairs, split_frame

    pairs = split_frame(labelled_pairs(data_dir), split)
    if limit:
        pairs = pairs.sample(n=min(limit, len(pairs)), random_state=seed).reset_index(drop=True)
    cache = JudgementCache(teacher.cache_path)
    try:
        labels, report = label_pairs(pairs=pairs, client=TeacherClient.from_settings(teacher, cache=cache),
                                     target=target, mode=mode, progress=progress)
    finally:
        cache.close()
    report["human_distribution_hard"] = label_distribution(pairs["label"].to_numpy())
    out_path.parent.mkdir(parents=True, exist_ok=True)
    labels.to_parquet(out_path, index=False)
    out_path.with_suffix(".json").write_text(json.dumps(report, indent=2))
    return report
