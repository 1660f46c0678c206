"""The split rule, label rule and data checksum are the project's fixed points: test them exactly."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from service.catalogue import HOME_DEPOT_SHA256, HOME_DEPOT_ZIP, load_catalogue, stable_id
from service.ranking.ordinal import label_from_raw
from training.data import labelled_pairs, split_frame, split_of

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def pairs():
    return labelled_pairs(DATA)


def test_vendored_file_matches_its_checksum():
    assert hashlib.sha256((DATA / HOME_DEPOT_ZIP).read_bytes()).hexdigest() == HOME_DEPOT_SHA256


def test_split_rule_is_md5_bucket_of_normalised_query():
    # md5("angle bracket") % 10 computed independently of split_of
    bucket = int(hashlib.md5(b"angle bracket").hexdigest(), 16) % 10
    expected = "train" if bucket < 8 else ("validation" if bucket == 8 else "test")
    assert split_of("  Angle Bracket ") == expected


def test_split_sizes_match_the_data_readme(pairs):
    assert len(split_frame(pairs, "train")) == 58_737
    test = split_frame(pairs, "test")
    assert (test.groupby("query").size() >= 2).sum() == 1_057


def test_splits_are_query_disjoint(pairs):
    by_split = {s: set(split_frame(pairs, s)["query"]) for s in ("train", "validation", "test")}
    assert not by_split["train"] & by_split["test"]
    assert not by_split["train"] & by_split["validation"]
    assert not by_split["validation"] & by_split["test"]


def test_three_level_rule_on_boundaries():
    raw = np.array([1.0, 1.67, 1.75, 1.835, 2.0, 2.33, 2.49, 2.5, 3.0])
    assert label_from_raw(raw).tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2]


def test_catalogue_has_every_distinct_product_and_search_term():
    catalogue = load_catalogue(DATA)
    assert len(catalogue.item_ids) == 54_667 == len(set(catalogue.item_ids))
    assert len(catalogue.keyphrases) == len(set(catalogue.keyphrases)) > 11_000


def test_stable_id_is_deterministic_non_negative_and_spreads():
    ids = [stable_id(str(i)) for i in range(10_000)]
    assert ids[0] == stable_id("0") and min(ids) >= 0 and max(ids) < 2**63
    assert len(set(ids)) == len(ids)
