"""Derived entity-pair tasks: the item–item and query–query rules on hand-made judgements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from service.ranking.ordinal import label_from_raw
from training.tasks import item_item_rows, query_item_rows, query_query_rows, task_sizes

COLUMNS = ["task", "left", "right", "relevance", "ctr", "cvr", "cvr_mask", "ctr_mask", "item_id"]


def judgements(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """(query, item_id, raw relevance) → the labelled-pairs frame; the title is ``T<item_id>``."""
    frame = pd.DataFrame(rows, columns=["query", "item_id", "relevance"])
    return frame.assign(title="T" + frame["item_id"])


def by_pair(rows: pd.DataFrame) -> dict[frozenset, float]:
    return {frozenset((left, right)): v for left, right, v in zip(rows["left"], rows["right"], rows["relevance"])}


def test_item_item_rule_is_the_min_of_both_judgements_and_drops_uninformative_pairs():
    pairs = judgements([
        ("drill", "a", 3.0), ("drill", "b", 2.67), ("drill", "c", 2.0), ("drill", "d", 1.0), ("drill", "e", 1.33),
    ])
    got = by_pair(item_item_rows(pairs, max_rows=None))
    assert got[frozenset(("Ta", "Tb"))] == 2.67  # exact + exact → exact
    assert got[frozenset(("Ta", "Tc"))] == 2.0  # exact + partial → partial
    assert got[frozenset(("Ta", "Td"))] == 1.0  # exact + irrelevant → irrelevant
    assert got[frozenset(("Tc", "Te"))] == 1.33  # partial + irrelevant → irrelevant
    assert frozenset(("Td", "Te")) not in got  # both irrelevant: says nothing about the two items
    assert len(got) == 10 - 1
    labels = label_from_raw(np.array([got[frozenset(("Ta", "Tb"))], got[frozenset(("Ta", "Tc"))], got[frozenset(("Ta", "Td"))]]))
    assert labels.tolist() == [2, 1, 0]


def test_title_pair_seen_twice_keeps_the_mean_and_identical_titles_are_dropped():
    pairs = judgements([("drill", "a", 3.0), ("drill", "b", 3.0), ("cordless drill", "a", 3.0), ("cordless drill", "b", 2.0)])
    assert by_pair(item_item_rows(pairs, max_rows=None)) == {frozenset(("Ta", "Tb")): pytest.approx(2.5)}
    pairs.loc[len(pairs)] = ["drill", "z", 3.0, "Ta"]  # a duplicate listing: another id with a's title
    got = item_item_rows(pairs, max_rows=None)  # (a, z) is dropped; (z, b) is a third judgement of (Ta, Tb)
    assert len(got) == 1 and by_pair(got) == {frozenset(("Ta", "Tb")): pytest.approx(8 / 3)}


def test_item_item_caps_are_seeded():
    pairs = judgements([(f"q{q}", f"i{q}-{i}", 3.0) for q in range(20) for i in range(8)])
    capped = item_item_rows(pairs, max_rows=50, max_pairs_per_query=5, seed=1)
    assert len(capped) == 50 and len(item_item_rows(pairs, max_rows=None, max_pairs_per_query=5)) == 100
    pd.testing.assert_frame_equal(capped, item_item_rows(pairs, max_rows=50, max_pairs_per_query=5, seed=1))
    assert not capped.equals(item_item_rows(pairs, max_rows=50, max_pairs_per_query=5, seed=2))


def test_query_query_rule_is_the_best_shared_product_and_negatives_share_none():
    pairs = judgements([
        ("drill", "a", 3.0), ("cordless drill", "a", 2.67),  # share an exact product → 2.67
        ("drill", "b", 2.33), ("drill bit", "b", 2.0),  # share a partial one → 2.0
        ("drill", "c", 3.0), ("hammer", "c", 1.0),  # shared but irrelevant to one → 1.0
        ("rug", "r", 3.0), ("lamp", "l", 3.0), ("sofa", "s", 3.0), ("vase", "v", 3.0),
    ])
    rows = query_query_rows(pairs, max_rows=None, negatives_per_positive=1.0, seed=3)
    got = by_pair(rows)
    assert got[frozenset(("drill", "cordless drill"))] == 2.67
    assert got[frozenset(("drill", "drill bit"))] == 2.0
    assert got[frozenset(("drill", "hammer"))] == 1.0
    shares = pairs.groupby("item_id")["query"].apply(set)
    sharing = {frozenset(p) for qs in shares for p in [(a, b) for a in qs for b in qs if a != b]}
    negatives = [k for k in got if k not in sharing]
    assert len(negatives) == 3 and all(got[k] == 1.0 for k in negatives)
    assert len(rows) == 6


def test_derived_rows_have_the_task_columns_and_no_engagement():
    pairs = judgements([("drill", "a", 3.0), ("drill", "b", 2.0), ("cordless drill", "a", 3.0)])
    for rows, task in ((item_item_rows(pairs), "item_item"), (query_query_rows(pairs), "query_query")):
        assert list(rows.columns) == COLUMNS
        assert (rows["task"] == task).all()
        assert (rows[["ctr", "cvr", "cvr_mask", "ctr_mask"]] == 0).all().all()
        assert rows["relevance"].between(1, 3).all()


def test_built_from_one_split_only():
    """Rows are built from the frame they are given: train rows never name a test query or a test-only item."""
    from training.data import labelled_pairs, split_frame

    data = Path(__file__).resolve().parents[2] / "data"
    frame = labelled_pairs(data)
    train, test = split_frame(frame, "train"), split_frame(frame, "test")
    qq = query_query_rows(train, max_rows=2_000)
    test_queries = set(test["query"]) - set(train["query"])
    assert not (set(qq["left"]) | set(qq["right"])) & test_queries
    ii = item_item_rows(train, max_rows=2_000)
    assert (set(ii["left"]) | set(ii["right"])) <= set(train["title"])
    sizes = task_sizes(pd.concat([query_item_rows(train.head(500)), ii, qq]))
    assert sizes.loc["item_item", "rows"] == 2_000 and sizes.loc["query_query", "rows"] == 2_000
