"""``shoprank eval``: the issue-2 table on the test split — BM25, zero-shot encoder and ranker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from service.catalogue import load_catalogue
from service.ranking.ordinal import label_from_raw
from service.inference.factory import make_backend, make_encoder, make_pair_scorer
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


def evaluate_test_split(settings: Settings, *, split: str = "test") -> list[Row]:
    pairs = labelled_pairs(settings.data_dir)
    frame = split_frame(pairs, split)
    train_mean = split_frame(pairs, "train")["relevance"].mean()
    rng = np.random.default_rng(0)
    frame["random"] = rng.random(len(frame))
    frame["bm25"] = bm25_scores(frame, load_catalogue(settings.data_dir))
    backend = make_backend(settings)
    frame["zero_shot"] = encoder_scores(frame, make_encoder(backend, settings))
    heads = ranker_heads(frame, make_pair_scorer(backend, settings))
    frame["ranker"] = heads.relevance.expected
    mean_label = int(label_from_raw(np.array([train_mean]))[0])  # the label of the train mean (partial)
    target = frame["relevance"].to_numpy()
    return [
        Row("random order", ndcg_at_k(frame, "random")),
        Row("train mean (constant)", None, rmse(np.full(len(frame), train_mean), target),
            accuracy(np.full(len(frame), mean_label), frame["label"])),
        Row("BM25 (bm25s)", ndcg_at_k(frame, "bm25")),
        Row(f"zero-shot encoder ({settings.encoder_model}, {settings.embedding_dim}-d)", ndcg_at_k(frame, "zero_shot")),
        Row(f"ranker ({settings.ranker_model})", ndcg_at_k(frame, "ranker"), rmse(heads.relevance.raw_relevance, target),
            accuracy(heads.relevance.label_index, frame["label"]), macro_f1(heads.relevance.label_index, frame["label"])),
    ]


def to_markdown(rows: list[Row]) -> str:
    def fmt(value):
        return "—" if value is None else f"{value:.3f}"

    lines = ["| system | NDCG@10 | RMSE (1–3) | 3-level acc. | macro-F1 |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r.system} | {fmt(r.ndcg10)} | {fmt(r.rmse)} | {fmt(r.accuracy)} | {fmt(r.macro_f1)} |" for r in rows]
    return "\n".join(lines)
