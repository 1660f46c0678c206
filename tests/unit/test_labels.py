"""Teacher-label maths: prompt answer parsing, log-probs → soft labels, distribution moves, cache keys."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from training.labels.cache import JudgementCache, judgement_key
from training.labels.distribution import label_distribution, rethreshold_to_target, reweight_to_target
from training.labels.prompt import build_messages, parse_answer, soft_label_from_logprobs
from training.labels.run import adjust_distribution, human_teacher_labels


def test_prompt_names_the_pair_and_the_three_levels():
    messages = build_messages(query="cordless drill", title="DEWALT 20V drill", category="Power Tools")
    text = messages[0]["content"] + messages[1]["content"]
    assert "cordless drill" in text and "DEWALT 20V drill" in text and "Power Tools" in text
    assert all(word in text for word in ("exact", "partial", "irrelevant"))
    assert "category" not in build_messages(query="q", title="t")[1]["content"].lower()


@pytest.mark.parametrize("text,label", [("2", 2), (" 1\n", 1), ("Relevance: 0", 0), ("exact", None), (None, None)])
def test_parse_answer_takes_the_first_class_digit(text, label):
    assert parse_answer(text) == label


def test_soft_label_sums_token_variants_and_renormalises_over_classes():
    content = [{"token": "2", "logprob": math.log(0.6), "top_logprobs": [
        {"token": "2", "logprob": math.log(0.6)}, {"token": " 2", "logprob": math.log(0.1)},
        {"token": "1", "logprob": math.log(0.2)}, {"token": "The", "logprob": math.log(0.1)}]}]
    probs = soft_label_from_logprobs(content)
    np.testing.assert_allclose(probs, [0.0, 0.2 / 0.9, 0.7 / 0.9])


def test_soft_label_skips_leading_non_answer_tokens_and_none_without_digits():
    content = [{"token": "Answer", "logprob": -0.1, "top_logprobs": []},
               {"token": "0", "logprob": math.log(0.5), "top_logprobs": [
                   {"token": "0", "logprob": math.log(0.5)}, {"token": "1", "logprob": math.log(0.5)}]}]
    np.testing.assert_allclose(soft_label_from_logprobs(content), [0.5, 0.5, 0.0])
    assert soft_label_from_logprobs([{"token": "yes", "logprob": 0.0, "top_logprobs": []}]) is None
    assert soft_label_from_logprobs(None) is None


def test_label_distribution_from_hard_and_soft():
    assert label_distribution(np.array([0, 2, 2, 1])) == {"irrelevant": 0.25, "partial": 0.25, "exact": 0.5}
    soft = label_distribution(np.array([[1.0, 0, 0], [0, 0.5, 0.5]]))
    assert soft == pytest.approx({"irrelevant": 0.5, "partial": 0.25, "exact": 0.25})


def test_reweight_hits_the_target_prior_and_keeps_row_order_of_classes():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1.0, 2.0, 6.0], size=500)  # an "optimistic" judge: mostly exact
    target = [0.16, 0.38, 0.46]
    moved = reweight_to_target(probs, target=target)
    np.testing.assert_allclose(moved.mean(axis=0), target, atol=1e-6)
    np.testing.assert_allclose(moved.sum(axis=1), 1.0)
    # one factor per class: the odds ratio between any two rows is unchanged
    before = probs[:, 0] / probs[:, 2]
    after = moved[:, 0] / moved[:, 2]
    np.testing.assert_allclose(after / before, (after / before)[0], rtol=1e-6)
    assert moved[:, 0].mean() > probs[:, 0].mean()


def test_reweight_is_identity_when_already_on_target():
    probs = np.array([[0.2, 0.3, 0.5], [0.4, 0.3, 0.3]])
    np.testing.assert_allclose(reweight_to_target(probs, target=probs.mean(axis=0)), probs, atol=1e-9)


def test_rethreshold_gives_exact_shares_and_usable_cut_points():
    scores = np.arange(10, dtype=float)
    labels, (low, high) = rethreshold_to_target(scores, target=[3, 3, 4])
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert 2 < low <= 3 and 5 < high <= 6


def test_bad_target_is_refused():
    with pytest.raises(ValueError):
        reweight_to_target(np.ones((2, 3)) / 3, target=[1, 0])
    with pytest.raises(ValueError):
        rethreshold_to_target(np.ones(3), target=[-1, 1, 1])


def test_human_teacher_soft_labels_have_the_human_mean_as_expectation():
    pairs = pd.DataFrame({"query": ["a", "b", "c"], "title": ["x", "y", "z"], "relevance": [1.0, 2.33, 3.0]})
    labels = human_teacher_labels(pairs)
    np.testing.assert_allclose(1 + labels["expected"], pairs["relevance"])
    assert labels["label"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(labels[["p_irrelevant", "p_partial", "p_exact"]].iloc[1], [0.0, 0.67, 0.33], atol=1e-9)


def test_adjust_distribution_rethreshold_makes_one_hot_labels_on_target():
    pairs = pd.DataFrame({"query": list("abcd"), "title": list("wxyz"), "relevance": [1.2, 2.0, 2.6, 3.0]})
    moved = adjust_distribution(human_teacher_labels(pairs), target=[0.5, 0.25, 0.25], mode="rethreshold")
    assert moved["label"].tolist() == [0, 0, 1, 2]
    assert set(moved["p_exact"]) <= {0.0, 1.0}


def test_cache_key_changes_with_model_prompt_and_pair(tmp_path):
    base = dict(model="m", prompt_version="v1", query="q", title="t", category=None)
    key = judgement_key(**base)
    assert key == judgement_key(**base)
    for change in ({"model": "m2"}, {"prompt_version": "v2"}, {"query": "q2"}, {"title": "t2"}, {"category": "c"}):
        assert judgement_key(**(base | change)) != key
    cache = JudgementCache(tmp_path / "c.sqlite")
    cache.put(key, {"probs": [0.1, 0.2, 0.7], "soft": True})
    cache.close()
    reopened = JudgementCache(tmp_path / "c.sqlite")
    assert reopened.get(key) == {"probs": [0.1, 0.2, 0.7], "soft": True} and reopened.get("other") is None
    assert len(reopened) == 1
