"""Entity-pair tasks on the shared 3-level scale, as training rows ``task, left, right, relevance, …``."""

from __future__ import annotations

import pandas as pd

from training.engagement import simulate_engagement


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
            "item_id": eng["item_id"],
        }
    )
