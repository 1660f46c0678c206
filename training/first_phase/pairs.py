"""The (task, left, right) pairs the first phase learns from, per split, with the human label where there is one.

Three sources, all from ONE split (the split is by query, so no validation or test query reaches train):
the labelled query–item pairs (``training/data.py``), the derived item_item and query_query pairs
(``training/tasks.py``, their default caps), and optionally unlabelled (query, retrieved item) pairs —
at serving time the first phase scores retrieval candidates, most of which no human judged.
``relevance`` is the human mean (1–3) or NaN for retrieved pairs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.data import sample_rows
from training.names import TASKS  # the ranker card's order: task_id indexes it
from training.tasks import item_item_rows, query_query_rows

COLUMNS = ["task", "left", "right", "relevance", "source"]


def labelled_task_pairs(pairs: pd.DataFrame, *, tasks: tuple[str, ...] = TASKS,
                        derived_max_rows: int | None = None) -> pd.DataFrame:
    """Distinct pairs of the tasks from one split's labelled pairs (``source`` = ``labelled``); the derived
    tasks keep training/tasks.py's caps unless ``derived_max_rows`` sets another (the validation split's
    item_item would otherwise hold more pairs than its query_item)."""
    frames = []
    if "query_item" in tasks:
        qi = pairs.groupby(["query", "title"], sort=False)["relevance"].mean().reset_index()
        frames.append(pd.DataFrame({"task": "query_item", "left": qi["query"], "right": qi["title"],
                                    "relevance": qi["relevance"]}))
    for task, build in (("item_item", item_item_rows), ("query_query", query_query_rows)):
        if task in tasks:
            rows = build(pairs) if derived_max_rows is None else build(pairs, max_rows=derived_max_rows)
            frames.append(rows[["task", "left", "right", "relevance"]])
    out = pd.concat(frames, ignore_index=True).drop_duplicates(["task", "left", "right"])
    return out.assign(source="labelled")[COLUMNS].reset_index(drop=True)


def retrieved_pairs(queries: list[str], query_vectors: np.ndarray, titles: list[str], title_vectors: np.ndarray, *,
                    k: int, exclude: pd.DataFrame | None = None, max_pairs: int | None = None,
                    seed: int = 13) -> pd.DataFrame:
    """Each query's top-``k`` catalogue titles by the served encoder's cosine (query_item, no human label).

    ``exclude`` (left, right) drops pairs already present (the labelled ones); ``max_pairs`` samples down (seeded).
    """
    import faiss

    index = faiss.IndexFlatIP(title_vectors.shape[1])
    index.add(np.ascontiguousarray(title_vectors, dtype=np.float32))
    _, ids = index.search(np.ascontiguousarray(query_vectors, dtype=np.float32), k)
    lefts = np.repeat(np.asarray(queries, dtype=object), k)
    rights = np.asarray(titles, dtype=object)[ids.reshape(-1)]
    frame = pd.DataFrame({"task": "query_item", "left": lefts, "right": rights})[ids.reshape(-1) >= 0]
    frame = frame.drop_duplicates(["left", "right"])
    if exclude is not None and len(exclude):
        known = frame.merge(exclude[["left", "right"]].drop_duplicates(), how="left", indicator=True)["_merge"]
        frame = frame[(known == "left_only").to_numpy()]
    frame = sample_rows(frame, max_pairs, seed=seed)
    return frame.assign(relevance=np.nan, source="retrieved")[COLUMNS]
