"""``GET /v1/items/{id}`` over HTTP on the embedded API (real ONNX models, the first 2,000 catalogue items).

The stored document plus ``searchable_version`` (the version this process's index holds); 404 for an
unknown or deleted id; no API key; no model call (the encoder's call count does not move); a price-only
``PUT`` advances the searchable version without re-embedding. The replica path (Kafka + Redis) is in
``test_replicas.py``.
"""

from __future__ import annotations

import re

from tests.conftest import API_KEY

KEY = {"X-API-Key": API_KEY}


def embedded_count(client, outcome: str) -> float:
    found = re.search(rf'shoprank_replica_item_embeddings_total\{{outcome="{outcome}"\}} (\S+)',
                      client.get("/metrics").text)
    return float(found.group(1)) if found else 0.0


def test_seed_items_are_searchable_at_version_zero_without_a_key(api_client) -> None:
    body = api_client.get("/v1/items/100001")
    assert body.status_code == 200, body.text
    item = body.json()
    assert item["item_id"] == "100001" and item["version"] == 0 and item["searchable_version"] == 0
    assert item["title"]


def test_unknown_and_invalid_ids(api_client) -> None:
    missing = api_client.get("/v1/items/no-such-item")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    too_long = api_client.get("/v1/items/" + "x" * 500)
    assert too_long.status_code == 422 and too_long.json()["error"]["code"]


def test_price_only_update_advances_the_searchable_version_without_a_model_call(api_client) -> None:
    title = "Walnut Floating Wall Shelf with Hidden Steel Bracket"
    assert api_client.put("/v1/items/sr-read-1", json={"version": 1, "title": title, "price": 40.0},
                          headers=KEY).status_code == 200
    embedded, reused = embedded_count(api_client, "embedded"), embedded_count(api_client, "reused")
    read = api_client.get("/v1/items/sr-read-1").json()
    assert (read["version"], read["searchable_version"], read["price"]) == (1, 1, 40.0)
    assert api_client.put("/v1/items/sr-read-1", json={"version": 2, "title": title, "price": 35.0,
                                                       "attributes": {"finish": "walnut"}},
                          headers=KEY).status_code == 200
    read = api_client.get("/v1/items/sr-read-1").json()
    assert (read["version"], read["searchable_version"], read["price"]) == (2, 2, 35.0)
    assert read["attributes"] == {"finish": "walnut"}
    assert embedded_count(api_client, "embedded") == embedded  # neither the GETs nor the price change embedded
    assert embedded_count(api_client, "reused") == reused + 1
    found = api_client.post("/v1/retrieve", json={"query": title, "k": 1, "mode": "dense"}).json()["items"]
    assert found[0]["id"] == "sr-read-1"  # still searchable by its (unchanged) title
    assert api_client.put("/v1/items/sr-read-1", json={"version": 3, "title": title + " Set"},
                          headers=KEY).status_code == 200
    assert embedded_count(api_client, "embedded") == embedded + 1  # a title change is re-embedded
    assert api_client.delete("/v1/items/sr-read-1", params={"version": 4}, headers=KEY).status_code == 200
    gone = api_client.get("/v1/items/sr-read-1")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
