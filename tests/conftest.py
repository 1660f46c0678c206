"""Shared fixtures: the ShopRank API served with the real ONNX models over the real catalogue.

``api_client`` starts the app once per session (embedded ONNX Runtime, in-process FAISS and
store, the first 2,000 catalogue items and every keyphrase, state in a temp dir) and waits for
``/readyz``. ``--model-repo`` points the tests at another repository (default ``model_repo/``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "test-key"
CATALOGUE_LIMIT = 2_000


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--model-repo", default=str(ROOT / "model_repo"),
                     help="model repository the API tests serve (default: the project's model_repo/)")


@pytest.fixture(scope="session")
def model_repo(pytestconfig: pytest.Config) -> Path:
    repo = Path(pytestconfig.getoption("--model-repo"))
    missing = [model for model in ("encoder", "ranker") if not any((repo / model).glob("*/model.onnx"))]
    if missing:
        pytest.fail(f"{repo} has no {missing} model: run `make prepare` first", pytrace=False)
    return repo


def embedded_settings(*, model_repo: Path, state_dir: Path, **overrides) -> Settings:
    """Settings for an all-in-process API over the vendored data, whatever the environment says."""
    base = dict(model_repo=model_repo, data_dir=ROOT / "data", state_dir=state_dir, inference="embedded",
                catalogue_limit=CATALOGUE_LIMIT, kafka_bootstrap=None, redis_url=None, api_key=None)
    return Settings(**(base | overrides))


@contextmanager
def serving(app: FastAPI, *, timeout_s: float = 900.0) -> Iterator[TestClient]:
    """Run the app's lifespan and wait until ``/readyz`` answers 200."""
    with TestClient(app) as client:
        deadline = time.monotonic() + timeout_s
        while (ready := client.get("/readyz")).status_code != 200:
            if ready.json()["error"]["code"] != "not_ready" or time.monotonic() > deadline:
                pytest.fail(f"API did not become ready: {ready.json()}", pytrace=False)
            time.sleep(0.5)
        yield client


@pytest.fixture(scope="session")
def api_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api-state")


@pytest.fixture(scope="session")
def api_settings(model_repo: Path, api_state_dir: Path) -> Settings:
    return embedded_settings(model_repo=model_repo, state_dir=api_state_dir, api_key=API_KEY)


@pytest.fixture(scope="session")
def api_client(api_settings: Settings) -> Iterator[TestClient]:
    with serving(create_app(api_settings)) as client:
        yield client
