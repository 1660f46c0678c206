"""Start-up plumbing: /healthz answers at once, /readyz and model routes say 503 until ready.

Uses the real app factory with a controllable ``build`` (the models are exercised in
tests/integration/test_api.py); this checks only the lifecycle and its error shape.
"""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from service.api.app import create_app
from service.errors import DependencyUnavailable
from service.settings import Settings


def test_not_ready_until_built_then_failure_is_reported() -> None:
    release = threading.Event()

    def build(settings: Settings):
        release.wait(10)
        raise RuntimeError("model repository unreadable")

    with TestClient(create_app(Settings(), build=build)) as client:
        assert client.get("/healthz").json() == {"status": "ok", "model_version": None}
        response = client.get("/readyz")
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert response.json()["error"]["code"] == "not_ready"
        rank = client.post("/v1/rank", json={"query": "drill", "items": [{"id": "1", "title": "drill"}]})
        assert rank.status_code == 503 and rank.json()["error"]["code"] == "not_ready"
        assert "shoprank_ready 0.0" in client.get("/metrics").text
        release.set()
        for _ in range(100):
            response = client.get("/readyz")
            if response.json()["error"]["code"] != "not_ready":
                break
            release.wait(0.05)
        assert response.status_code == 503 and response.json()["error"]["code"] == "dependency_unavailable"
        assert "model repository unreadable" in response.json()["error"]["message"]


def test_a_dependency_down_at_start_up_is_retried_until_it_answers() -> None:
    attempts: list[int] = []

    def build(settings: Settings):
        attempts.append(1)
        if len(attempts) < 3:
            raise DependencyUnavailable("triton is not up yet")
        raise RuntimeError("stop here: the third attempt got past the dependency")

    with TestClient(create_app(Settings(), build=build)) as client:
        for _ in range(200):  # back-off 1 s, then 2 s
            response = client.get("/readyz")
            if response.json()["error"]["code"] != "not_ready":
                break
            threading.Event().wait(0.05)
        assert len(attempts) == 3
        assert "third attempt" in response.json()["error"]["message"]


def test_openapi_documents_every_endpoint_with_limits() -> None:
    schema = create_app(Settings(max_k=7)).openapi()
    assert {"/v1/rank", "/v1/retrieve", "/v1/keyphrases/recommend", "/v1/items/{item_id}", "/healthz",
            "/readyz", "/metrics"} <= set(schema["paths"])
    assert schema["components"]["schemas"]["RetrieveRequest"]["properties"]["k"]["maximum"] == 7
