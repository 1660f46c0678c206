"""Every HTTP end-to-end test, again with ``SHOPRANK_INFERENCE=triton`` against a real tritonserver.

The test functions of ``test_api.py`` and ``test_api_bad_input.py`` are imported unchanged; the
``api_settings`` / ``api_client`` fixtures are overridden here so that they run against an API
whose encoder and ranker run in Triton (the indexes are built through Triton too). Then the
Triton-only behaviour: inference metrics labelled ``triton``, and Triton down → 503 with
``Retry-After`` → recovery without restarting the API.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.conftest import API_KEY, embedded_settings, serving
from tests.integration.test_api import *  # noqa: F403 - the same end-to-end tests
from tests.integration.test_api_bad_input import *  # noqa: F403 - the same bad-input tests
from tests.integration.test_phased_ranking import (  # noqa: F401 - phased ranking through Triton too
    phased_repo,
    test_keyphrases_go_through_both_phases,
    test_readyz_says_phasing_is_on,
    test_the_cross_encoder_rescores_the_top_depth_which_stays_above_the_rest,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RANK = {"query": "angle bracket", "items": [{"id": "100001", "title": "Simpson Strong-Tie 12-Gauge Angle"}]}
UNCACHED_RANK = RANK | {"query": "angle bracket while triton is down"}  # a pair the pair-score cache has not seen


@pytest.fixture(scope="module")
def api_settings(triton, triton_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return embedded_settings(model_repo=triton_repo, state_dir=tmp_path_factory.mktemp("triton-api-state"),
                             api_key=API_KEY, inference="triton", triton_url=triton.grpc_url, triton_retries=1,
                             triton_timeout_s=30.0, model_swap_poll_s=0)


@pytest.fixture(scope="module")
def api_client(api_settings: Settings):
    with serving(create_app(api_settings)) as client:
        yield client


def test_inference_runs_in_triton_and_is_measured(api_client: TestClient) -> None:
    assert api_client.post("/v1/rank", json=RANK).status_code == 200
    text = api_client.get("/metrics").text
    for model in ("encoder", "ranker"):
        count = re.search(rf'shoprank_inference_batch_size_count{{backend="triton",model="{model}"}} (\S+)', text)
        assert count and float(count.group(1)) > 0, model
    assert re.search(r'shoprank_inference_latency_seconds_count{backend="triton",model="ranker"} [1-9]', text)
    assert "X-Request-ID".lower() in {k.lower() for k in api_client.get("/healthz").headers}


def test_triton_down_answers_503_with_retry_after_then_recovers(api_client: TestClient, api_settings: Settings,
                                                                 triton) -> None:
    assert api_client.post("/v1/rank", json=RANK).status_code == 200
    triton.stop()
    try:
        assert api_client.post("/v1/rank", json=RANK).status_code == 200  # its pair is in the pair-score cache
        for path, body in (("/v1/rank", UNCACHED_RANK), ("/v1/retrieve", {"query": "angle bracket", "k": 3})):
            down = api_client.post(path, json=body)
            assert down.status_code == 503, down.text
            assert down.headers["Retry-After"] == str(api_settings.triton_retry_after_s)
            assert down.json()["error"]["code"] == "dependency_unavailable" and "Triton" in down.json()["error"]["message"]
        assert api_client.get("/healthz").status_code == 200  # the process stays alive
    finally:
        triton.start()  # same ports; the API is not restarted
    deadline = time.monotonic() + 30
    while (again := api_client.post("/v1/rank", json=UNCACHED_RANK)).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert again.status_code == 200 and again.json()["items"][0]["id"] == "100001"
    assert api_client.post("/v1/retrieve", json={"query": "angle bracket", "k": 3}).status_code == 200
