"""/v1/retrieve's modes through HTTP with the real encoder, the real item index and bm25s over the titles.

Lexical hits share a word with the query, hybrid fuses both lists, an unknown mode is a 422 naming the known
ones, and the lexical index follows the embedded write path (upsert, title change, delete).
"""

from __future__ import annotations

import pytest

from service.lexical import tokenize
from tests.conftest import API_KEY

pytestmark = pytest.mark.slow
KEY = {"X-API-Key": API_KEY}


def retrieve(client, query: str, *, k: int = 20, **extra) -> dict:
    response = client.post("/v1/retrieve", json={"query": query, "k": k} | extra)
    assert response.status_code == 200, response.text
    return response.json()


def test_each_mode_answers_and_says_which(api_client, api_settings) -> None:
    default = retrieve(api_client, "cordless drill")
    assert default["mode"] == api_settings.retrieval_mode
    dense = retrieve(api_client, "cordless drill", mode="dense")["items"]
    lexical = retrieve(api_client, "cordless drill", mode="lexical")["items"]
    hybrid = retrieve(api_client, "cordless drill", mode="hybrid")["items"]
    assert len(dense) == len(hybrid) == 20 and lexical
    assert all({"cordless", "drill"} & set(tokenize([item["title"]])[0]) for item in lexical)
    assert [i["score"] for i in lexical] == sorted((i["score"] for i in lexical), reverse=True)
    assert all(-1.001 <= i["score"] <= 1.001 for i in dense)
    fused = {i["id"] for i in hybrid}
    assert fused <= {i["id"] for i in retrieve(api_client, "cordless drill", k=100, mode="dense")["items"]} | {
        i["id"] for i in retrieve(api_client, "cordless drill", k=100, mode="lexical")["items"]}
    assert fused & {i["id"] for i in dense[:5]} and fused & {i["id"] for i in lexical[:5]}  # both sources count


def test_an_unknown_mode_is_a_422_listing_the_known_ones(api_client) -> None:
    response = api_client.post("/v1/retrieve", json={"query": "drill", "mode": "sparse"})
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert message.startswith("mode:") and all(mode in message for mode in ("dense", "lexical", "hybrid"))


def test_the_lexical_index_follows_writes(api_client) -> None:
    item = "lexical-write-1"
    put = api_client.put(f"/v1/items/{item}", headers=KEY, json={"version": 1, "title": "Zyxwvut Cordless Drill"})
    assert put.status_code == 200, put.text
    assert [i["id"] for i in retrieve(api_client, "zyxwvut", mode="lexical")["items"]] == [item]
    assert item in [i["id"] for i in retrieve(api_client, "zyxwvut drill", mode="hybrid")["items"]]
    api_client.put(f"/v1/items/{item}", headers=KEY, json={"version": 2, "title": "Qqvvxx Hammer"})
    assert retrieve(api_client, "zyxwvut", mode="lexical")["items"] == []
    assert [i["id"] for i in retrieve(api_client, "qqvvxx", mode="lexical")["items"]] == [item]
    assert api_client.delete(f"/v1/items/{item}?version=3", headers=KEY).status_code == 200
    assert retrieve(api_client, "qqvvxx", mode="lexical")["items"] == []
