"""Scores of one (query, title) pair list by each system under evaluation: BM25, an encoder, the ranker."""

from __future__ import annotations

import bm25s
import numpy as np
import pandas as pd

from service.catalogue import Catalogue
from service.inference.models import Encoder, PairScorer


def bm25_scores(frame: pd.DataFrame, catalogue: Catalogue) -> np.ndarray:
    """BM25 (bm25s, English stopwords) of each pair, with IDF from the whole product catalogue."""
    catalogue_titles = catalogue.item_titles
    item_row = {item_id: i for i, item_id in enumerate(catalogue.item_ids)}
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(catalogue_titles, stopwords="en", show_progress=False), show_progress=False)
    scores = np.zeros(len(frame))
    for query, positions in frame.groupby("query", sort=False).indices.items():
        query_tokens = bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
        all_scores = retriever.get_scores(query_tokens) if query_tokens else np.zeros(len(catalogue_titles))
        scores[positions] = all_scores[[item_row[i] for i in frame["item_id"].iloc[positions]]]
    return scores


def encoder_scores(frame: pd.DataFrame, encoder: Encoder) -> np.ndarray:
    """Cosine of query and title embeddings (each distinct text encoded once)."""
    queries = frame["query"].unique().tolist()
    titles = frame["title"].unique().tolist()
    q = dict(zip(queries, encoder.encode(queries, kind="query")))
    t = dict(zip(titles, encoder.encode(titles, kind="item")))
    return np.array([float(q[a] @ t[b]) for a, b in zip(frame["query"], frame["title"])])


def ranker_heads(frame: pd.DataFrame, scorer: PairScorer, *, task: str = "query_item"):
    return scorer.score(frame["query"].tolist(), frame["title"].tolist(), task=task)
