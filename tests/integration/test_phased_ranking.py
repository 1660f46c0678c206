"""Phased ranking end to end through HTTP with the shipped models (encoder, ranker, first_phase).

The session API (``api_client``: the real ONNX models over the first 2,000 catalogue items) serves with
phasing on; a second API over a copy of the repository without ``first_phase`` checks that phasing is
then off, said on ``/readyz``, and that ``rerank_depth ≥ n`` answers exactly what that API answers.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from service.api.app import create_app
from tests.conftest import embedded_settings, serving

pytestmark = pytest.mark.slow
PHASED_VERSION = r"encoder:\d+(\+item_encoder:\d+)?\+ranker:\d+\+first_phase:\d+"


@pytest.fixture(scope="module")
def phased_repo(model_repo: Path) -> Path:
    if not any((model_repo / "first_phase").glob("*/model.onnx")):
        pytest.fail(f"{model_repo} has no first_phase model: run `shoprank train first-phase` first", pytrace=False)
    return model_repo


def catalogue_items(client, query: str, n: int) -> list[dict]:
    """``n`` stored items near ``query`` (ids and titles exactly as stored), via /v1/retrieve."""
    response = client.post("/v1/retrieve", json={"query": query, "k": n})
    assert response.status_code == 200, response.text
    return [{"id": item["id"], "title": item["title"]} for item in response.json()["items"]]


def rank(client, query: str, items: list[dict], **extra) -> dict:
    response = client.post("/v1/rank", json={"query": query, "items": items} | extra)
    assert response.status_code == 200, response.text
    return response.json()


def metric(client, name: str, labels: str) -> float:
    selector = f"{name}{{{labels}}}" if labels else name
    match = re.search(rf"^{re.escape(selector)} (\S+)$", client.get("/metrics").text, re.M)
    return float(match.group(1)) if match else 0.0


def test_readyz_says_phasing_is_on(api_client, phased_repo) -> None:
    ready = api_client.get("/readyz").json()
    assert ready["phasing"].startswith("on: first_phase:") and re.fullmatch(PHASED_VERSION, ready["model_version"])


def test_the_cross_encoder_rescores_the_top_depth_which_stays_above_the_rest(api_client, phased_repo) -> None:
    items = catalogue_items(api_client, "cordless drill", 30)
    body = rank(api_client, "cordless drill", items, rerank_depth=5, profile="relevance")
    assert re.fullmatch(PHASED_VERSION, body["model_version"])
    phases = [item["phase"] for item in body["items"]]
    assert phases == [2] * 5 + [1] * 25  # no floor: every re-scored item above every first-phase one
    for block in (body["items"][:5], body["items"][5:]):
        scores = [item["score"] for item in block]
        assert scores == sorted(scores, reverse=True)
    only_first = rank(api_client, "cordless drill", items, rerank_depth=0, profile="relevance")
    assert {item["phase"] for item in only_first["items"]} == {1}
    # the five re-scored are the first phase's best five
    assert {i["id"] for i in body["items"][:5]} == {i["id"] for i in only_first["items"][:5]}


def test_a_floor_sends_filtered_items_last_phase_2_first(api_client, phased_repo) -> None:
    items = catalogue_items(api_client, "angle bracket", 20)
    body = rank(api_client, "angle bracket", items, rerank_depth=8, min_relevance=0.9)["items"]
    keys = [(item["filtered"], item["phase"] == 1) for item in body]
    assert keys == sorted(keys) and any(item["filtered"] for item in body)
    assert sum(item["phase"] == 2 for item in body) == 8


def test_stored_titles_use_index_vectors_and_other_titles_are_embedded(api_client, phased_repo) -> None:
    items = catalogue_items(api_client, "garden hose", 12)
    rows = 'backend="embedded",model="encoder"'
    before = metric(api_client, "shoprank_inference_batch_size_sum", rows)
    rank(api_client, "garden hose nozzle", items, rerank_depth=0)
    stored = metric(api_client, "shoprank_inference_batch_size_sum", rows) - before
    renamed = [item | {"title": item["title"] + " (renamed)"} for item in items]
    rank(api_client, "garden hose reel", renamed, rerank_depth=0)
    embedded = metric(api_client, "shoprank_inference_batch_size_sum", rows) - before - stored
    assert stored == 1 and embedded == 1 + len(items)  # the query alone, then the query and every title


def test_repeated_pairs_are_served_from_the_pair_cache(api_client, phased_repo) -> None:
    items = catalogue_items(api_client, "ceiling fan", 6)
    hits = metric(api_client, "shoprank_pair_cache_hits_total", "")
    first = rank(api_client, "ceiling fan with light pair cache", items, rerank_depth=6)
    again = rank(api_client, "ceiling fan with light pair cache", items, rerank_depth=6)
    assert metric(api_client, "shoprank_pair_cache_hits_total", "") - hits == 6
    assert first["items"] == again["items"]


def test_keyphrases_go_through_both_phases(api_client, phased_repo) -> None:
    item = {"title": "DEWALT 20-Volt MAX Lithium-Ion Cordless Drill/Driver Kit"}
    response = api_client.post("/v1/keyphrases/recommend", json={"item": item, "k": 10})
    assert response.status_code == 200, response.text
    phases = [kp["phase"] for kp in response.json()["keyphrases"]]
    assert phases and phases == sorted(phases, reverse=True) and phases[0] == 2
    first_only = api_client.post("/v1/keyphrases/recommend", json={"item": item, "k": 10, "rerank_depth": 0}).json()
    assert {kp["phase"] for kp in first_only["keyphrases"]} <= {1}
    bad = api_client.post("/v1/keyphrases/recommend", json={"item": item, "k": 10, "rerank_depth": -1})
    assert bad.status_code == 422 and "rerank_depth" in bad.json()["error"]["message"]


def test_rank_rejects_a_depth_outside_the_limits(api_client, api_settings) -> None:
    items = [{"id": "1", "title": "drill"}]
    for depth in (-1, api_settings.max_candidates + 1):
        response = api_client.post("/v1/rank", json={"query": "drill", "items": items, "rerank_depth": depth})
        assert response.status_code == 422 and "rerank_depth" in response.json()["error"]["message"]


def test_without_a_first_phase_model_phasing_is_off_and_full_depth_is_todays_answer(
        api_client, api_settings, phased_repo, tmp_path_factory) -> None:
    bare = tmp_path_factory.mktemp("repo-without-first-phase")
    for model in ("encoder", "ranker"):
        shutil.copytree(phased_repo / model, bare / model, symlinks=True,
                        copy_function=lambda src, dst: Path(dst).symlink_to(Path(src).resolve()))
    state = tmp_path_factory.mktemp("bare") / "state"  # the session API's snapshots: same encoder, restored as they are
    shutil.copytree(api_settings.state_dir, state)
    settings = embedded_settings(model_repo=bare, state_dir=state, model_swap_poll_s=0)
    items = catalogue_items(api_client, "vanity", 15)
    query = "bathroom vanity full depth check"  # a query no other test sends: no pair-cache hit on either side
    phased = rank(api_client, query, items, rerank_depth=len(items))
    with serving(create_app(settings)) as plain:
        ready = plain.get("/readyz").json()
        assert ready["phasing"].startswith("off: no 'first_phase' model")
        assert re.fullmatch(r"encoder:\d+(\+item_encoder:\d+)?\+ranker:\d+", ready["model_version"])
        today = rank(plain, query, items)
        assert {item["phase"] for item in today["items"]} == {2}
        assert rank(plain, query, items, rerank_depth=0)["items"] == today["items"]  # no first phase: depth ignored
    assert {item["phase"] for item in phased["items"]} == {2}
    assert phased["items"] == today["items"]  # same order, same scores, same fields


def test_cached_keyphrases_are_not_served_after_the_keyphrase_depth_changes(api_client, phased_repo) -> None:
    from dataclasses import replace

    from service import pipelines

    runtime = api_client.app.state.runtime_holder.get()
    item_id = catalogue_items(api_client, "angle bracket", 1)[0]["id"]
    pipelines.recommend_for_item_id(runtime, item_id=item_id, k=10)
    assert pipelines.recommend_for_item_id(runtime, item_id=item_id, k=10).source == "cache"
    deeper = replace(runtime, settings=runtime.settings.model_copy(
        update={"keyphrase_rerank_depth": (runtime.settings.keyphrase_rerank_depth or 0) + 5}))
    assert deeper.recommendations_version != runtime.recommendations_version
    assert pipelines.recommend_for_item_id(deeper, item_id=item_id, k=10).source == "computed"
    assert pipelines.recommend_for_item_id(runtime, item_id=item_id, k=10).source == "computed"  # and back


def test_a_few_new_pairs_of_a_ranked_query_are_answered_in_phase_1_then_scored_for_the_next_request(
        api_client, phased_repo) -> None:
    """The same query again with its first-phase best item retitled: one new pair in the re-scored five, so the
    answer leaves it in phase 1 at no cross-encoder cost, in its first-phase place (first), the pair filler
    scores it, and the next request re-scores all five from the cache, as a request that defers nothing does."""
    runtime = api_client.app.state.runtime_holder.get()
    query = "cordless impact driver deferred pairs"  # a query no other test sends
    items = catalogue_items(api_client, "cordless impact driver", 30)
    cold = rank(api_client, query, items, rerank_depth=5)
    assert [item["phase"] for item in cold["items"]] == [2] * 5 + [1] * 25  # a cold query: re-scored in full

    best = rank(api_client, query, items, rerank_depth=0)["items"][0]["id"]  # the first phase's best
    retitled = [item | {"title": item["title"] + " with Case"} if item["id"] == best else item for item in items]
    first_order = [item["id"] for item in rank(api_client, query, retitled, rerank_depth=0)["items"]]
    place = first_order.index(best)
    assert place < 5  # still among the five the cross-encoder re-scores
    deferred = metric(api_client, "shoprank_rerank_deferred_pairs_total", "")
    answer = rank(api_client, query, retitled, rerank_depth=5)["items"]
    assert metric(api_client, "shoprank_rerank_deferred_pairs_total", "") - deferred == 1
    # the retitled item keeps its first-phase place among the five until the cross-encoder has scored it
    assert [item["phase"] for item in answer[:5]] == [1 if i == place else 2 for i in range(5)]
    assert answer[place]["id"] == best and {item["phase"] for item in answer[5:]} == {1}
    assert [item["id"] for item in answer[5:]] == first_order[5:]
    assert runtime.pair_filler.wait_idle(30)
    assert metric(api_client, "shoprank_pair_fill_pairs_total", "") >= 1

    misses = metric(api_client, "shoprank_pair_cache_misses_total", "")
    again = rank(api_client, query, retitled, rerank_depth=5)["items"]
    assert metric(api_client, "shoprank_pair_cache_misses_total", "") == misses  # all five from the cache
    assert [item["phase"] for item in again] == [2] * 5 + [1] * 25 and best in {i["id"] for i in again[:5]}
    assert again == rank(api_client, query, retitled, rerank_depth=5, defer_uncached=False)["items"]


def test_a_caller_can_have_every_pair_re_scored_before_the_answer(api_client, phased_repo) -> None:
    query = "stainless steel kitchen sink exact rescoring"
    items = catalogue_items(api_client, "stainless steel kitchen sink", 20)
    rank(api_client, query, items, rerank_depth=5)
    best = rank(api_client, query, items, rerank_depth=0)["items"][0]["id"]
    retitled = [item | {"title": item["title"] + " 33 in."} if item["id"] == best else item for item in items]
    exact = rank(api_client, query, retitled, rerank_depth=5, defer_uncached=False)["items"]
    assert [item["phase"] for item in exact] == [2] * 5 + [1] * 15
    for bad in ("no", 1):
        response = api_client.post("/v1/rank", json={"query": query, "items": items, "defer_uncached": bad})
        assert response.status_code == 422 and "defer_uncached" in response.json()["error"]["message"]
