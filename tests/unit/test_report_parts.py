"""The pieces of ``shoprank eval --report``: recall over a catalogue, Matryoshka cuts, the trade-off
sweep, the keyphrase de-duplication, per-task figures and the "not yet" inventory."""

import json

import numpy as np
import pandas as pd
import pytest

from service.inference.models import PairHeads
from service.matryoshka import matryoshka_cut
from service.ranking.ordinal import OrdinalScores
from service.settings import WeightProfile
from training.evaluate import inventory
from training.evaluate.ablation import pair_figures, signals_of
from training.evaluate.embeddings import EmbeddingSet
from training.evaluate.keyphrase_eval import additional_counts, additional_keyphrases, sample_items
from training.evaluate.metrics import ndcg_at_k, pearson_r
from training.evaluate.retrieval import (
    catalogue_recall,
    exact_items_by_query,
    funnel_recall,
    recall_at_k,
    recall_by_dim,
)
from training.evaluate.task_eval import task_figures
from training.evaluate.tradeoff import engagement_at_k, engagement_share, engagement_weights, sweep


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_recall_at_k_counts_relevant_items_in_the_first_k_only():
    got = recall_at_k([["a", "b", "c"], ["x", "y"]], [{"a", "c", "z"}, {"y"}], k=2)
    np.testing.assert_allclose(got, [1 / 3, 1.0])
    with pytest.raises(ValueError, match="no relevant item"):
        recall_at_k([["a"]], [set()], k=1)


def test_catalogue_recall_matches_an_exact_numpy_search():
    rng = np.random.default_rng(0)
    items, queries = _unit(rng.normal(size=(500, 32))), _unit(rng.normal(size=(20, 32)))
    ids = [f"i{n}" for n in range(500)]
    relevant = [{ids[j] for j in rng.choice(500, size=5, replace=False)} for _ in range(20)]
    recall, retrieved = catalogue_recall(queries, items, ids, relevant, k=50)
    top = np.argsort(-(queries @ items.T), axis=1)[:, :50]
    expected = [len({ids[j] for j in row} & want) / 5 for row, want in zip(top, relevant)]
    np.testing.assert_allclose(recall, expected)
    assert [len(r) for r in retrieved] == [50] * 20


def test_exact_items_by_query_keeps_only_label_two():
    frame = pd.DataFrame({"query": ["q1", "q1", "q2"], "item_id": ["a", "b", "c"], "label": [2, 1, 0]})
    assert exact_items_by_query(frame) == {"q1": {"a"}}


def test_matryoshka_cut_renormalises_and_pair_cosines_use_the_cut():
    rng = np.random.default_rng(1)
    q, t = _unit(rng.normal(size=(3, 16))), _unit(rng.normal(size=(4, 16)))
    cut = matryoshka_cut(t, 4)
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, rtol=1e-6)
    emb = EmbeddingSet("x", ["a", "b", "c"], q, ["i0", "i1", "i2", "i3"], t)
    got = emb.pair_cosines(["c", "a"], ["i3", "i0"], 4)
    expected = [matryoshka_cut(q, 4)[2] @ cut[3], matryoshka_cut(q, 4)[0] @ cut[0]]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert pearson_r(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.5])) > 0.99


def test_recall_by_dim_searches_each_cut_for_the_exact_items_only():
    # q1's exact item sits on the first axis, q2's only differs from a decoy beyond the 2-d cut
    q = _unit(np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]]))
    t = _unit(np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, -1.0], [0.0, 0.0, 1.0, 0.0]]))
    emb = EmbeddingSet("x", ["q1", "q2", "q3"], np.vstack([q, q[:1]]), ["a", "b", "decoy", "c"], t)
    frame = pd.DataFrame({"query": ["q1", "q2", "q2", "q3"], "item_id": ["a", "b", "c", "c"], "label": [2, 2, 1, 0]})
    assert recall_by_dim(emb, frame, dims=[4], k=1) == {4: 1.0}  # q3 has no exact item: left out
    assert recall_by_dim(emb, frame, dims=[2], k=1)[2] in (0.5, 1.0)  # at 2-d, b and the decoy tie for q2
    assert recall_by_dim(emb, frame, dims=[4, 2], k=2) == {4: 1.0, 2: 1.0}


def test_funnel_recall_rescores_the_short_cut_shortlist_at_full_width():
    # the same geometry: at the 2-d cut, b and the decoy tie for q2; the 4-d rescoring tells them apart
    q = _unit(np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]]))
    t = _unit(np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, -1.0], [0.0, 0.0, 1.0, 0.0]]))
    emb = EmbeddingSet("x", ["q1", "q2"], q, ["a", "b", "decoy", "c"], t)
    frame = pd.DataFrame({"query": ["q1", "q2"], "item_id": ["a", "b"], "label": [2, 2]})
    assert funnel_recall(emb, frame, shortlist_dim=2, shortlist_factor=2, k=1) == 1.0  # shortlist {b, decoy}
    assert funnel_recall(emb, frame, shortlist_dim=1, shortlist_factor=1, k=1) < 1.0  # q2's cut is all ties


def _candidates() -> pd.DataFrame:
    # one query; relevance and simulated CTR disagree on the order
    return pd.DataFrame({"query": ["q"] * 3, "relevance": [3.0, 2.0, 1.0], "sim_ctr": [0.1, 0.2, 0.9]})


def test_engagement_weight_moves_the_order_from_relevance_to_engagement():
    frame = _candidates()
    expected, ctr, cvr = np.array([2.0, 1.0, 0.0]), np.array([0.1, 0.2, 0.9]), np.array([0.1, 0.2, 0.9])
    curve = sweep(frame, expected=expected, ctr=ctr, cvr=cvr, points=(0.0, 1.0))
    at_relevance, at_engagement = curve.iloc[0], curve.iloc[1]
    assert at_relevance["ndcg10"] == pytest.approx(1.0)
    assert at_engagement["ndcg10"] < at_relevance["ndcg10"]
    assert at_engagement["engagement_weighted"] > at_relevance["engagement_weighted"]
    # the plain top-10 mean cannot move with three candidates: why the report also weighs by position
    assert at_engagement["engagement_mean"] == pytest.approx(at_relevance["engagement_mean"])


def test_position_weighted_engagement_and_profile_placement():
    frame = _candidates().assign(score=[3.0, 2.0, 1.0])
    weights = 1.0 / (1.0 + np.arange(3)) ** 1.0
    assert engagement_at_k(frame, "score", "sim_ctr", position_decay=1.0) == pytest.approx(
        weights @ np.array([0.1, 0.2, 0.9]) / weights.sum())
    assert engagement_share(WeightProfile(relevance=1.0, ctr=0.5, cvr=0.5)) == pytest.approx(0.5)
    assert engagement_share(engagement_weights(0.3)) == pytest.approx(0.3)


def test_additional_keyphrases_ignore_case_and_spacing():
    assert additional_keyphrases(["Copper  Pipe", "pvc elbow"], ["copper pipe"]) == ["pvc elbow"]
    assert additional_counts([["a", "b"], ["c"]], [["A"], []]).tolist() == [1, 1]
    with pytest.raises(ValueError):
        additional_counts([["a"]], [])


def test_sample_items_is_seeded_distinct_and_capped():
    ids = [f"i{n}" for n in range(50)] * 2
    first = sample_items(ids, n=10, seed=7)
    assert first == sample_items(ids, n=10, seed=7) and len(set(first)) == 10
    assert len(sample_items(ids, n=500, seed=7)) == 50


def test_task_figures_from_heads():
    rows = pd.DataFrame({"relevance": [1.0, 2.0, 3.0, 3.0]})
    # expected rating 1 + p1 + p2 reproduces the human means exactly
    heads = PairHeads(OrdinalScores(np.array([0.0, 1.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0, 1.0])),
                      np.zeros(4), np.zeros(4))
    figures = task_figures("query_item", rows, heads.relevance)
    assert figures.rows == 4 and figures.accuracy == pytest.approx(1.0) and figures.rmse == pytest.approx(0.0)
    assert figures.shares == pytest.approx((0.25, 0.25, 0.5))
    voted = task_figures("query_item", rows, heads.relevance, labels=np.array([0, 1, 1, 2]))
    assert voted.accuracy == pytest.approx(0.75) and voted.rmse == pytest.approx(0.0)


def _write(path, name, payload):
    (path / name).mkdir()
    (path / name / ("config.json" if "routing" in payload else "shoprank_student.json")).write_text(json.dumps(payload))


def test_inventory_names_what_is_missing_and_nothing_that_is_there(tmp_path):
    lines = inventory.missing(inventory.scan(tmp_path), served_encoder="zero-shot")
    text = "\n".join(lines)
    for topic in ("Routing variants", "Multi-task vs single-task", "KD-loss ablation", "label ablation", "LLM teacher"):
        assert topic in text

    for routing in inventory.ROUTINGS:
        _write(tmp_path, f"ranker-{routing}", {"routing": routing, "tasks": ["query_item", "item_item"]})
    for loss in inventory.KD_LOSSES:
        _write(tmp_path, f"student-{loss}", {"kd_loss": loss})
    _write(tmp_path, "student-clicks", {"kd_loss": "pearson", "use_labels": False, "use_kd": False})
    _write(tmp_path, "student-labels", {"kd_loss": "pearson", "use_kd": False})
    (tmp_path / "teacher_labels.parquet").write_bytes(b"")
    assert inventory.missing(inventory.scan(tmp_path), served_encoder="zero-shot") == []


def test_ndcg_column_of_the_sweep_is_the_metric_of_the_value_order():
    frame = _candidates()
    expected = np.array([0.5, 1.5, 1.0])
    curve = sweep(frame, expected=expected, ctr=np.zeros(3), cvr=np.zeros(3), points=(0.0,))
    assert curve.iloc[0]["ndcg10"] == pytest.approx(ndcg_at_k(frame.assign(s=expected), "s"))


def test_student_ablation_figures_and_names():
    assert signals_of({"use_labels": False, "use_kd": False}) == "click only"
    assert signals_of({}) == "clicks + labels + KD"
    assert signals_of({"use_clicks": False, "use_labels": True, "use_kd": True}) == "labels+KD"
    rng = np.random.default_rng(3)
    queries, items = ["q0", "q1"], ["a", "b", "c"]
    emb = EmbeddingSet("s", queries, _unit(rng.normal(size=(2, 8))), items, _unit(rng.normal(size=(3, 8))))
    frame = pd.DataFrame({"query": ["q0", "q0", "q1", "q1"], "item_id": ["a", "b", "b", "c"],
                          "relevance": [3.0, 1.0, 2.0, 2.5]})
    cosine = emb.pair_cosines(frame["query"], frame["item_id"], 8)
    figures = pair_figures(emb, frame, ranker_expected=2 * cosine + 1, dims=(8, 4))
    assert figures[8]["r_ranker"] == pytest.approx(1.0)  # a teacher the student copies exactly, up to scale
    assert figures[8]["r_human"] == pytest.approx(pearson_r(cosine, frame["relevance"].to_numpy()))
    assert figures[8]["ndcg10"] == pytest.approx(ndcg_at_k(frame.assign(s=cosine), "s"))
    assert set(figures) == {8, 4}
