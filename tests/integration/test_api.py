"""End to end through HTTP with the real ONNX encoder and ranker over the real catalogue.

Relevant / irrelevant pairs come from the Home Depot file (human relevance 3.0 for the
relevant product; the other is from an unrelated department).
"""

from __future__ import annotations

import json
import re

import pytest

from service.inference.repository import latest_version
from service.settings import Settings
from tests.conftest import API_KEY, CATALOGUE_LIMIT, embedded_settings, serving

pytestmark = pytest.mark.slow
KEY = {"X-API-Key": API_KEY}
ANGLE = {"id": "100001", "title": "Simpson Strong-Tie 12-Gauge Angle"}
MICROWAVE = {"id": "100006", "title": "Whirlpool 1.9 cu. ft. Over the Range Convection Microwave in Stainless Steel with Sensor Cooking"}
GAS_RANGE = {"id": "101228", "title": "Samsung 30 in. 5.8 cu. ft. Gas Range with Self-Cleaning and Fan Convection Oven in Stainless Steel"}
SHRINK_TUBE = {"id": "101187", "title": "Gardner Bender 1/4 in. White Polyolefin Heat Shrink Tubing (5-Pack)"}
INSULATION = {"id": "101219", "title": "Owens Corning R-19 Kraft Faced Insulation Roll 15 in. x 39.2 ft. (12-Rolls)"}
DREMEL = {"id": "101240", "title": "Dremel Multi-Max Oscillating Tool Kit"}


def rank(client, query: str, items: list[dict], **extra) -> dict:
    response = client.post("/v1/rank", json={"query": query, "items": items} | extra)
    assert response.status_code == 200, response.text
    return response.json()


def retrieved_ids(client, query: str, k: int = 5) -> list[str]:
    response = client.post("/v1/retrieve", json={"query": query, "k": k, "mode": "dense"})  # the vector index
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_health_and_readiness(api_client) -> None:
    assert api_client.get("/healthz").json()["status"] == "ok"
    ready = api_client.get("/readyz").json()
    served = r"encoder:\d+(\+item_encoder:\d+)?\+ranker:\d+(\+first_phase:\d+)?"
    assert ready["status"] == "ready" and re.fullmatch(served, ready["model_version"])
    assert api_client.get("/docs").status_code == 200


@pytest.mark.parametrize(("query", "relevant", "irrelevant"), [
    ("angle bracket", ANGLE, MICROWAVE), ("gas range", GAS_RANGE, SHRINK_TUBE), ("r19 insulation", INSULATION, DREMEL)])
def test_rank_puts_relevant_product_above_irrelevant(api_client, query, relevant, irrelevant) -> None:
    body = rank(api_client, query, [irrelevant, relevant], profile="relevance")
    first, second = body["items"]
    assert first["id"] == relevant["id"] and first["score"] > second["score"]
    assert first["relevance"]["p_partial_or_better"] > second["relevance"]["p_partial_or_better"]
    for item in body["items"]:
        rel = item["relevance"]
        assert 0 <= rel["p_exact"] <= rel["p_partial_or_better"] <= 1 and 0 <= item["score"] <= 1
        assert rel["expected"] == pytest.approx(rel["p_partial_or_better"] + rel["p_exact"])
        assert 0 <= item["engagement"]["ctr"] <= 1 and not item["filtered"]


def test_the_unified_ranker_serves_every_entity_pair_task(api_client, model_repo) -> None:
    """One endpoint, one model: the task picks the routing (its prefix from the model card)."""
    card = json.loads((latest_version(model_repo, "ranker").path / "shoprank.json").read_text())
    assert card["tasks"] == ["query_item", "item_item", "query_query"]
    twin = {"id": "twin", "title": "Whirlpool 1.9 cu. ft. Over the Range Microwave in Stainless Steel"}
    items = rank(api_client, MICROWAVE["title"], [DREMEL, SHRINK_TUBE, twin], task="item_item", profile="relevance")
    assert items["items"][0]["id"] == "twin"
    phrases = [{"id": "other", "title": "bathroom vanity with top"}, {"id": "same", "title": "cordless drill driver"}]
    queries = rank(api_client, "cordless drill", phrases, task="query_query", profile="relevance")
    assert [i["id"] for i in queries["items"]] == ["same", "other"]


def test_rank_floor_weights_and_profiles(api_client) -> None:
    plain = {item["id"]: item for item in rank(api_client, "angle bracket", [MICROWAVE, ANGLE])["items"]}
    floor = (plain[ANGLE["id"]]["relevance"]["p_partial_or_better"] + plain[MICROWAVE["id"]]["relevance"]["p_partial_or_better"]) / 2
    floored = rank(api_client, "angle bracket", [ANGLE, MICROWAVE], min_relevance=floor, profile="engagement")["items"]
    assert [i["id"] for i in floored] == [ANGLE["id"], MICROWAVE["id"]] and [i["filtered"] for i in floored] == [False, True]
    only_relevance = rank(api_client, "angle bracket", [ANGLE], weights={"relevance": 1, "ctr": 0, "cvr": 0})
    item = only_relevance["items"][0]
    assert item["score"] == pytest.approx(item["relevance"]["expected"] / 2, rel=1e-6)


def test_popularity_feature_moves_engagement_and_the_engagement_profile(api_client, model_repo) -> None:
    """The shipped ranker's card has an engagement fit (``shoprank calibrate``), so features.popularity counts."""
    prior = latest_version(model_repo, "ranker").card["calibration"]["engagement"]
    assert prior["ctr"]["popularity"] > 0 and prior["cvr"]["popularity"] > 0
    two_drills = [{"id": "a", "title": "DEWALT 20-Volt MAX Cordless Drill/Driver Kit"},
                  {"id": "b", "title": "RYOBI 18-Volt ONE+ Cordless Drill/Driver Kit"}]
    only_relevance = {"relevance": 1, "ctr": 0, "cvr": 0}
    plain = {i["id"]: i for i in rank(api_client, "cordless drill", two_drills, weights=only_relevance)["items"]}
    trailing = min(plain, key=lambda i: plain[i]["score"])
    boosted = [item | {"features": {"popularity": 3.0 if item["id"] == trailing else -3.0}} for item in two_drills]
    body = {i["id"]: i for i in rank(api_client, "cordless drill", boosted, profile="engagement")["items"]}
    assert body[trailing]["engagement"]["ctr"] > plain[trailing]["engagement"]["ctr"]
    assert body[trailing]["engagement"]["cvr"] > plain[trailing]["engagement"]["cvr"]
    assert body[trailing]["relevance"] == plain[trailing]["relevance"]  # relevance never reads the feature
    assert rank(api_client, "cordless drill", boosted, profile="engagement")["items"][0]["id"] == trailing
    assert rank(api_client, "cordless drill", boosted, weights=only_relevance)["items"][0]["id"] != trailing
    bad = api_client.post("/v1/rank", json={"query": "drill", "items": [ANGLE | {"features": {"popularity": 99}}]})
    assert bad.status_code == 422 and "popularity" in bad.json()["error"]["message"]


def test_retrieve_finds_items_by_their_own_titles(api_client) -> None:
    assert ANGLE["id"] in retrieved_ids(api_client, ANGLE["title"], k=3)
    assert GAS_RANGE["id"] in retrieved_ids(api_client, GAS_RANGE["title"], k=3)
    assert len(retrieved_ids(api_client, "cordless drill", k=17)) == 17


def test_keyphrases_for_a_stored_item_are_relevant_and_then_cached(api_client, api_settings: Settings) -> None:
    first = api_client.post("/v1/keyphrases/recommend", json={"item_id": "101190", "k": 10}).json()  # DEWALT combo kit
    assert first["source"] == "computed" and first["keyphrases"]
    phrases = [k["keyphrase"] for k in first["keyphrases"]]
    assert any("dewalt" in phrase for phrase in phrases), phrases
    floor = latest_version(api_settings.model_repo, api_settings.ranker_model).card["calibration"]["min_relevance"]
    floors = {2: floor, 1: floor}  # phased ranking: a keyphrase clears the floor of the phase that scored it
    if any((api_settings.model_repo / api_settings.first_phase_model).glob("*/model.onnx")):
        first_phase_card = latest_version(api_settings.model_repo, api_settings.first_phase_model).card
        floors[1] = first_phase_card.get("calibration", {}).get("min_relevance", floor)
    assert all(k["relevance"]["p_partial_or_better"] >= floors[k["phase"]] for k in first["keyphrases"])
    phases = [k["phase"] for k in first["keyphrases"]]
    assert phases == sorted(phases, reverse=True)  # re-scored by the ranker first
    for phase in (1, 2):
        expected = [k["relevance"]["expected"] for k in first["keyphrases"] if k["phase"] == phase]
        assert expected == sorted(expected, reverse=True)
    again = api_client.post("/v1/keyphrases/recommend", json={"item_id": "101190", "k": 10}).json()
    assert again["source"] == "cache" and [k["keyphrase"] for k in again["keyphrases"]] == phrases


def test_keyphrases_for_an_ad_hoc_item(api_client) -> None:
    body = api_client.post("/v1/keyphrases/recommend",
                           json={"item": {"title": "RIDGID 4.5-gal. Wet/Dry Vacuum"}, "k": 10}).json()
    phrases = [k["keyphrase"] for k in body["keyphrases"]]
    assert body["source"] == "computed" and any(re.search(r"vac|ridgid|shop", p) for p in phrases), phrases


def test_put_makes_an_item_retrievable_and_delete_removes_it(api_client) -> None:
    title = "Zebra Print Velvet Storage Ottoman with Brass Legs"
    put = api_client.put("/v1/items/sr-test-1", json={"version": 1, "title": title}, headers=KEY)
    assert put.status_code == 200 and put.json() == {"item_id": "sr-test-1", "version": 1, "status": "applied"}
    assert retrieved_ids(api_client, title, k=1) == ["sr-test-1"]
    stale = api_client.put("/v1/items/sr-test-1", json={"version": 1, "title": "other"}, headers=KEY)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_version"
    renamed = "Cast Iron Clawfoot Bathtub Faucet in Oil Rubbed Bronze"
    assert api_client.put("/v1/items/sr-test-1", json={"version": 2, "title": renamed}, headers=KEY).status_code == 200
    assert retrieved_ids(api_client, renamed, k=1) == ["sr-test-1"]
    deleted = api_client.delete("/v1/items/sr-test-1", params={"version": 3}, headers=KEY)
    assert deleted.status_code == 200 and deleted.json()["version"] == 3
    assert "sr-test-1" not in retrieved_ids(api_client, renamed, k=20)
    assert api_client.post("/v1/keyphrases/recommend", json={"item_id": "sr-test-1"}).status_code == 404
    resurrect = api_client.put("/v1/items/sr-test-1", json={"version": 2, "title": title}, headers=KEY)
    assert resurrect.status_code == 409  # the tombstone keeps version 3


def test_a_text_change_invalidates_cached_keyphrases_and_a_price_change_does_not(api_client) -> None:
    def source() -> str:
        return api_client.post("/v1/keyphrases/recommend", json={"item_id": "101251"}).json()["source"]

    source()  # fills the cache
    assert source() == "cache"
    title = api_client.get("/v1/items/101251").json()["title"]
    assert api_client.put("/v1/items/101251", json={"version": 1, "title": title, "price": 99.0},
                          headers=KEY).status_code == 200
    assert source() == "cache"  # same text: the keyphrases computed for version 0 still describe it
    update = {"version": 2, "title": "RIDGID 4.5-gal. Wet/Dry Vacuum with Blower"}
    assert api_client.put("/v1/items/101251", json=update, headers=KEY).status_code == 200
    assert source() == "computed"
    assert source() == "cache"


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}])
def test_writes_need_the_api_key(api_client, headers) -> None:
    for response in (api_client.put("/v1/items/sr-key", json={"version": 1, "title": "x"}, headers=headers),
                     api_client.delete("/v1/items/sr-key", params={"version": 1}, headers=headers)):
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert "sr-key" not in retrieved_ids(api_client, "x", k=50)


def test_metrics_count_requests_and_report_indexes(api_client) -> None:
    rank(api_client, "angle bracket", [ANGLE])
    text = api_client.get("/metrics").text
    assert re.search(r'shoprank_http_requests_total\{method="POST",route="/v1/rank",status="200"\} [1-9]', text)
    assert re.search(r'shoprank_http_request_duration_seconds_count\{method="POST",route="/v1/rank",status="200"\}', text)
    items = float(re.search(r'shoprank_index_vectors\{index="items"\} (\S+)', text).group(1))
    assert abs(items - CATALOGUE_LIMIT) <= 5 and 'shoprank_model_info{' in text and "shoprank_ready 1.0" in text


def test_restart_restores_snapshots_instead_of_re_encoding(api_client, api_settings: Settings) -> None:
    snapshot = api_settings.state_dir / "items.faiss"
    before = snapshot.stat().st_mtime_ns
    from service.api.app import create_app

    again = embedded_settings(model_repo=api_settings.model_repo, state_dir=api_settings.state_dir)  # no API key
    with serving(create_app(again)) as client:
        assert snapshot.stat().st_mtime_ns == before
        assert ANGLE["id"] in retrieved_ids(client, ANGLE["title"], k=3)
        assert client.put("/v1/items/sr-open", json={"version": 1, "title": "Open Item"}).status_code == 200
