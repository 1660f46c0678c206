"""``shoprank eval``: the issue-2 table on the test split — BM25, zero-shot encoder and ranker."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from service.catalogue import load_catalogue
from service.inference.factory import make_backend, make_encoder, make_pair_scorer
from service.ranking.ordinal import label_from_raw
from service.settings import Settings
from training.data import labelled_pairs, split_frame
from training.evaluate.metrics import accuracy, macro_f1, ndcg_at_k, rmse
from training.evaluate.scorers import bm25_scores, encoder_scores, ranker_heads


@dataclass(frozen=True)
class Row:
    system: str
    ndcg10: float | None
    rmse: float | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    key: str = ""  # a stable name to select the row by (the system label carries versions): see ``row_named``


def row_named(rows: list[Row], key: str) -> Row:
    """The row whose ``key`` is ``key`` (``evaluate_test_split``: random, train_mean, bm25, encoder, ranker)."""
    for row in rows:
        if row.key == key:
            return row
    raise KeyError(f"no row {key!r} among {[r.key for r in rows]}")


def add_baselines(frame: pd.DataFrame, catalogue) -> None:
    """``random`` (seed 0) and ``bm25`` score columns, in place."""
    frame["random"] = np.random.default_rng(0).random(len(frame))
    frame["bm25"] = bm25_scores(frame, catalogue)


def train_mean_row(frame: pd.DataFrame, train_mean: float) -> Row:
    mean_label = int(label_from_raw(np.array([train_mean]))[0])  # the label of the train mean (partial)
    return Row("train mean (constant)", None, rmse(np.full(len(frame), train_mean), frame["relevance"].to_numpy()),
               accuracy(np.full(len(frame), mean_label), frame["label"]), key="train_mean")


def ranker_row(system: str, frame: pd.DataFrame, heads, *, column: str = "ranker", key: str = "") -> Row:
    """NDCG@10 of ``frame[column]`` (the heads' expected relevance) and the heads' regression/class figures."""
    rel = heads.relevance
    return Row(system, ndcg_at_k(frame, column), rmse(rel.raw_relevance, frame["relevance"].to_numpy()),
               accuracy(rel.label_index, frame["label"]), macro_f1(rel.label_index, frame["label"]), key=key)


def evaluate_test_split(settings: Settings, *, split: str = "test") -> list[Row]:
    pairs = labelled_pairs(settings.data_dir)
    frame = split_frame(pairs, split)
    train_mean = split_frame(pairs, "train")["relevance"].mean()
    add_baselines(frame, load_catalogue(settings.data_dir))
    backend = make_backend(settings)
    encoder = make_encoder(backend, settings)
    frame["zero_shot"] = encoder_scores(frame, encoder)
    kind = "zero-shot encoder" if encoder.zero_shot else "student encoder"
    scorer = make_pair_scorer(backend, settings)
    heads = ranker_heads(frame, scorer)
    frame["ranker"] = heads.relevance.expected
    return [
        Row("random order", ndcg_at_k(frame, "random"), key="random"),
        train_mean_row(frame, train_mean),
        Row("BM25 (bm25s)", ndcg_at_k(frame, "bm25"), key="bm25"),
        Row(f"{kind} ({encoder.model_version}, {settings.embedding_dim}-d)", ndcg_at_k(frame, "zero_shot"),
            key="encoder"),
        ranker_row(f"ranker ({scorer.model_version})", frame, heads, key="ranker"),
    ]


def to_markdown(rows: list[Row]) -> str:
    def fmt(value):
        return "—" if value is None else f"{value:.3f}"

    lines = ["| system | NDCG@10 | RMSE (1–3) | 3-level acc. | macro-F1 |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r.system} | {fmt(r.ndcg10)} | {fmt(r.rmse)} | {fmt(r.accuracy)} | {fmt(r.macro_f1)} |" for r in rows]
    return "\n".join(lines)
