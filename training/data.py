"""Labelled pairs, the query-disjoint split and the 3-level labels, exactly as data/README.md fixes them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from service.catalogue import load_pairs
from service.ranking.ordinal import label_from_raw

SPLITS = ("train", "validation", "test")


def split_of(search_term: str) -> str:
    """md5 bucket of the normalised query: 0–7 train, 8 validation, 9 test (never tune on test)."""
    q = search_term.strip().lower()
    bucket = int(hashlib.md5(q.encode()).hexdigest(), 16) % 10
    return "train" if bucket < 8 else ("validation" if bucket == 8 else "test")


def labelled_pairs(data_dir: Path) -> pd.DataFrame:
    """Rows with ``query`` (normalised), ``item_id``, ``title``, ``relevance`` (1–3), ``label`` (0–2), ``split``."""
    raw = load_pairs(data_dir)
    frame = pd.DataFrame(
        {
            "query": raw["search_term"].str.lower(),
            "item_id": raw["product_uid"],
            "title": raw["product_title"],
            "relevance": raw["relevance"].astype(float),
        }
    )
    frame["label"] = label_from_raw(frame["relevance"].to_numpy())
    frame["split"] = frame["query"].map(split_of)
    return frame


def split_frame(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    return frame[frame["split"] == split].reset_index(drop=True)


def sample_rows(frame: pd.DataFrame, n: int | None, *, seed: int) -> pd.DataFrame:
    """At most ``n`` rows of ``frame``: a seeded random sample, or every row in order when ``n`` is None or
    not below the frame's length. The package's one row-sampling rule (task caps, budgets, parity rows)."""
    if n is None or len(frame) <= n:
        return frame.reset_index(drop=True)
    return frame.sample(n=n, random_state=seed).reset_index(drop=True)
