"""Every kind of bad request gets a 4xx with a clear message naming the problem, never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow
ITEM = {"id": "100001", "title": "Simpson Strong-Tie 12-Gauge Angle"}
KEY = {"X-API-Key": "test-key"}

CASES = [
    # (method, path, json body or raw string, status, error code, text the message must contain)
    ("post", "/v1/rank", {"query": "   ", "items": [ITEM]}, 422, "invalid_input", "query"),
    ("post", "/v1/retrieve", {"query": ""}, 422, "invalid_input", "query"),
    ("post", "/v1/retrieve", {"query": "q" * 257}, 422, "invalid_input", "at most 256"),
    ("post", "/v1/rank", {"query": "drill", "items": [{"id": "1", "title": "t" * 513}]}, 422, "invalid_input", "items.0.title"),
    ("put", "/v1/items/x", {"version": 1, "title": ""}, 422, "invalid_input", "title"),
    ("put", "/v1/items/" + "x" * 129, {"version": 1, "title": "t"}, 422, "invalid_input", "item_id"),
    ("post", "/v1/retrieve", {"query": "drill", "k": 0}, 422, "invalid_input", "k"),
    ("post", "/v1/retrieve", {"query": "drill", "k": 201}, 422, "invalid_input", "k"),
    ("post", "/v1/keyphrases/recommend", {"item_id": "100001", "k": 0}, 422, "invalid_input", "k"),
    ("post", "/v1/keyphrases/recommend", {"item_id": "100001", "k": 201}, 422, "invalid_input", "k"),
    ("post", "/v1/rank", {"query": "drill", "items": [dict(ITEM, id=str(i)) for i in range(201)]}, 413,
     "payload_too_large", "at most 200"),
    ("post", "/v1/rank", {"query": "drill", "items": []}, 422, "invalid_input", "items"),
    ("post", "/v1/keyphrases/recommend", {"item_id": "no-such-item"}, 404, "not_found", "no-such-item"),
    ("post", "/v1/retrieve", {"query": "drill", "k": "ten"}, 422, "invalid_input", "k"),
    ("post", "/v1/retrieve", {"query": ["drill"]}, 422, "invalid_input", "query"),
    ("post", "/v1/rank", {"query": "drill", "items": ITEM}, 422, "invalid_input", "items"),
    ("put", "/v1/items/x", {"version": "new", "title": "t"}, 422, "invalid_input", "version"),
    ("put", "/v1/items/x", {"item_id": "y", "version": 1, "title": "t"}, 422, "invalid_input", "path says"),
    ("post", "/v1/retrieve", '{"query": "drill", ', 400, "malformed_json", "not valid JSON"),
    ("post", "/v1/rank", "not json at all", 400, "malformed_json", "not valid JSON"),
    ("post", "/v1/rank", '{"query": "drill", "items": [{"id": "1", "title": "a"}], "min_relevance": NaN}', 422,
     "invalid_input", "min_relevance"),
    ("post", "/v1/rank", {"query": "drill", "items": [ITEM], "profile": "nope"}, 422, "invalid_input",
     "profile: Input should be 'default', 'engagement' or 'relevance'"),
    ("post", "/v1/retrieve", {"query": " \t "}, 422, "invalid_input", "query"),
    ("post", "/v1/keyphrases/recommend", {"item": None, "item_id": "100001"}, 422, "invalid_input", "item"),
    ("post", "/v1/rank", {"query": "drill", "items": [ITEM], "task": "nope"}, 422, "invalid_input", "task"),
    ("post", "/v1/rank", {"query": "drill", "items": [ITEM], "weights": {"relevance": 0, "ctr": 0, "cvr": 0}}, 422,
     "invalid_input", "weight"),
    ("post", "/v1/rank", {"query": "drill", "items": [ITEM], "weights": {"ctr": -1}}, 422, "invalid_input", "weights.ctr"),
    ("post", "/v1/rank", {"query": "drill", "items": [ITEM], "rerank_depth": False}, 422, "invalid_input",
     "rerank_depth"),
    ("post", "/v1/rank", {"query": "drill", "items": [ITEM], "min_relevance": 1.5}, 422, "invalid_input", "min_relevance"),
    ("post", "/v1/retrieve", {"query": "drill", "kk": 3}, 422, "invalid_input", "kk"),
    ("post", "/v1/keyphrases/recommend", {"k": 3}, 422, "invalid_input", "exactly one"),
    ("post", "/v1/keyphrases/recommend", {"item": {"title": "a"}, "item_id": "100001"}, 422, "invalid_input", "exactly one"),
    ("delete", "/v1/items/x", None, 422, "invalid_input", "version"),
    ("delete", "/v1/items/x?version=-1", None, 422, "invalid_input", "version"),
    ("get", "/v1/rank", None, 405, "method_not_allowed", "Method Not Allowed"),
    ("post", "/v1/items/x", None, 405, "method_not_allowed", "Method Not Allowed"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code", "needle"), CASES,
                         ids=[f"{c[0]} {c[1][:30]} {c[3]} {c[5]}" for c in CASES])
def test_bad_input_gets_a_clear_4xx(api_client, method, path, body, status, code, needle) -> None:
    kwargs: dict = {"headers": dict(KEY)}
    if isinstance(body, str):
        kwargs["content"] = body
        kwargs["headers"]["content-type"] = "application/json"
    elif body is not None:
        kwargs["json"] = body
    response = api_client.request(method.upper(), path, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and needle in error["message"], error


def test_a_wrong_method_names_every_method_the_path_serves(api_client) -> None:
    response = api_client.post("/v1/items/x", json={})
    assert response.status_code == 405 and response.headers["allow"] == "DELETE, GET, PUT", response.headers
    assert api_client.get("/v1/rank").headers["allow"] == "POST"
