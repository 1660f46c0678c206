"""Entity-pair tasks on the shared 3-level scale, as training rows ``task, left, right, relevance, …``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from service.ranking.ordinal import RATING_CUTS
from training.data import sample_rows
from training.engagement import simulate_engagement
from training.names import TASKS


def query_item_rows(pairs: pd.DataFrame) -> pd.DataFrame:
    """The labelled (search term, product title) task, with simulated engagement."""
    eng = simulate_engagement(pairs)
    return pd.DataFrame(
        {
            "task": "query_item",
            "left": eng["query"],
            "right": eng["title"],
            "relevance": eng["relevance"],
            "ctr": eng["ctr"],
            "cvr": eng["cvr"],
            "cvr_mask": eng["cvr_mask"],
            "ctr_mask": 1.0,
            "item_id": eng["item_id"],
        }
    )


# --- derived tasks (data README: "extra entity-pair tasks … must say how they were derived")
#
# Both tasks are built only from the pairs of ONE split (callers pass ``split_frame(frame, s)``),
# so no test query or test judgement reaches train rows. Relevance stays on the raw 1–3 scale, so
# ``label_from_raw`` gives their 3-level labels and the ranker's soft ordinal targets apply as is.
# They carry no engagement: ``ctr``/``cvr`` are 0 with ``ctr_mask`` = ``cvr_mask`` = 0.

_NO_ENGAGEMENT = {"ctr": 0.0, "cvr": 0.0, "cvr_mask": 0.0, "ctr_mask": 0.0}


def _derived_frame(task: str, left: list[str], right: list[str], relevance: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"task": task, "left": left, "right": right, "relevance": relevance})
    for column, value in _NO_ENGAGEMENT.items():
        frame[column] = value
    frame["item_id"] = None
    return frame


def _self_join(pairs: pd.DataFrame, *, on: str) -> pd.DataFrame:
    """Every unordered pair of rows sharing ``on`` (a query, or a product), columns suffixed _a / _b."""
    base = pairs[["query", "item_id", "title", "relevance"]]
    joined = base.merge(base, on=on, suffixes=("_a", "_b"))
    other = "item_id" if on == "query" else "query"
    return joined[joined[f"{other}_a"] < joined[f"{other}_b"]]


def _oriented(task: str, a: pd.Series, b: pd.Series, relevance: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    flip = rng.random(len(a)) < 0.5
    left = np.where(flip, b.to_numpy(), a.to_numpy()).tolist()
    right = np.where(flip, a.to_numpy(), b.to_numpy()).tolist()
    return _derived_frame(task, left, right, relevance)


def item_item_rows(pairs: pd.DataFrame, *, max_rows: int | None = 12_000, max_pairs_per_query: int = 10,
                   seed: int = 13) -> pd.DataFrame:
    """Product–product task: two products judged for the same search term.

    Rule: relevance(a, b) = min(raw(q, a), raw(q, b)) — both exact → exact (2), exact + partial →
    partial (1), partial + partial → partial (1), anything with an irrelevant side → irrelevant (0).
    Because the 3-level rule is monotone, ``label_from_raw(min(raw))`` = min of the two labels.
    Pairs where BOTH products are irrelevant to the query are dropped (they say nothing about how
    the two products relate), and so are pairs with identical titles. At most
    ``max_pairs_per_query`` pairs per query (seeded); a title pair judged under several queries
    (or through duplicate listings) keeps the mean of its values; then at most ``max_rows`` (seeded).
    """
    rng = np.random.default_rng(seed)
    joined = _self_join(pairs, on="query")
    joined = joined[(np.maximum(joined["relevance_a"], joined["relevance_b"]) >= RATING_CUTS[0])
                    & (joined["title_a"] != joined["title_b"])]
    joined = joined.assign(draw=rng.random(len(joined)))
    joined = joined[joined.groupby("query")["draw"].rank(method="first") <= max_pairs_per_query]
    joined = joined.assign(relevance=np.minimum(joined["relevance_a"], joined["relevance_b"]),
                           first=np.minimum(joined["title_a"], joined["title_b"]),
                           second=np.maximum(joined["title_a"], joined["title_b"]))
    merged = joined.groupby(["first", "second"], sort=True)["relevance"].mean().reset_index()
    merged = sample_rows(merged, max_rows, seed=seed)
    return _oriented("item_item", merged["first"], merged["second"], merged["relevance"].to_numpy(float), rng)


def query_query_rows(pairs: pd.DataFrame, *, max_rows: int | None = 6_000, negatives_per_positive: float = 0.5,
                     seed: int = 13) -> pd.DataFrame:
    """Search-term–search-term task: two search terms judged against the same product(s).

    Rule: for each product judged by both terms take min(raw(q1, p), raw(q2, p)) (how well that
    product serves both); the pair's relevance is the max over shared products — sharing an exact
    product → exact (2), sharing at best a partial one → partial (1), sharing only products one of
    them finds irrelevant → irrelevant (0). Sampled negatives: random term pairs of the same split
    that share no product get relevance 1.0 (irrelevant), ``negatives_per_positive`` × the number of
    sharing pairs (noisy by nature: two terms can be related without a shared judged product).
    Capped at ``max_rows`` (seeded).
    """
    rng = np.random.default_rng(seed)
    joined = _self_join(pairs, on="item_id")
    joined = joined.assign(relevance=np.minimum(joined["relevance_a"], joined["relevance_b"]))
    sharing = joined.groupby(["query_a", "query_b"], sort=True)["relevance"].max().reset_index()
    queries = np.sort(pairs["query"].unique())
    wanted = round(len(sharing) * negatives_per_positive)
    negatives = pd.DataFrame(columns=["query_a", "query_b", "relevance"])
    if wanted and len(queries) > 2:
        draws = rng.choice(len(queries), size=(wanted * 2 + 16, 2))
        a, b = queries[draws.min(axis=1)], queries[draws.max(axis=1)]
        candidates = pd.DataFrame({"query_a": a, "query_b": b})[a != b].drop_duplicates()
        known = candidates.merge(sharing[["query_a", "query_b"]], how="left", indicator=True)["_merge"] == "both"
        negatives = candidates[~known.to_numpy()].head(wanted).assign(relevance=1.0)
    rows = pd.concat([sharing, negatives], ignore_index=True).sort_values(["query_a", "query_b"])
    rows = sample_rows(rows, max_rows, seed=seed)
    return _oriented("query_query", rows["query_a"], rows["query_b"], rows["relevance"].to_numpy(float), rng)


def task_sizes(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows and 3-level label shares per task (what the docs and the report quote)."""
    from service.ranking.ordinal import label_from_raw

    labelled = rows.reset_index(drop=True)
    labelled = labelled.assign(label=label_from_raw(labelled["relevance"].to_numpy(float)))
    shares = pd.crosstab(labelled["task"], labelled["label"], normalize="index").reindex(columns=[0, 1, 2], fill_value=0.0)
    shares.columns = ["share_irrelevant", "share_partial", "share_exact"]
    shares = shares.round(3)
    return shares.assign(rows=labelled.groupby("task").size())


TASK_ROWS = {"query_item": query_item_rows, "item_item": item_item_rows, "query_query": query_query_rows}
assert tuple(TASK_ROWS) == TASKS  # one row builder per task name, in the card's order


def ranker_rows(pairs: pd.DataFrame, *, tasks: list[str], limit: int | None = None, seed: int = 13) -> pd.DataFrame:
    """Training rows of ``tasks`` (the derived tasks at their default caps), each task sampled down to ``limit``."""
    unknown = [t for t in tasks if t not in TASK_ROWS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known: {', '.join(TASKS)}")
    return pd.concat([sample_rows(TASK_ROWS[task](pairs), limit or None, seed=seed) for task in tasks],
                     ignore_index=True)
