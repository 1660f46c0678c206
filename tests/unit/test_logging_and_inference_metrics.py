"""Request ids and JSON logs (service/logging.py); inference metrics wrapper (service/inference/metrics.py)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from service.inference.base import ModelInfo, TensorSpec
from service.inference.metrics import INFERENCE_REGISTRY, InstrumentedBackend
from service.logging import JsonFormatter, RequestContextMiddleware, request_id_var


@pytest.fixture()
def json_lines():
    """Records of the ``shoprank`` loggers rendered by ``JsonFormatter``, as parsed dicts."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("shoprank")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in lines]
    logger.removeHandler(handler)


@pytest.fixture()
def client() -> TestClient:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware)

    @app.get("/hello")
    def hello() -> dict:  # sync route: runs in the thread pool, must still see the request id
        logging.getLogger("shoprank.test").info("inside", extra={"answer": 42})
        return {"request_id": request_id_var.get()}

    return TestClient(app)


def test_request_id_is_made_returned_and_logged(client: TestClient, json_lines) -> None:
    response = client.get("/hello")
    request_id = response.headers["X-Request-ID"]
    assert len(request_id) == 32 and response.json() == {"request_id": request_id}
    inside, access = json_lines()
    assert inside["request_id"] == request_id and inside["answer"] == 42 and inside["logger"] == "shoprank.test"
    assert access["request_id"] == request_id
    assert (access["method"], access["path"], access["status"]) == ("GET", "/hello", 200)
    assert access["duration_ms"] >= 0 and access["level"] == "INFO" and access["ts"].endswith("Z")


def test_caller_request_id_is_kept_when_sane_and_replaced_when_not(client: TestClient) -> None:
    assert client.get("/hello", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    replaced = client.get("/hello", headers={"X-Request-ID": "x" * 500}).headers["X-Request-ID"]
    assert replaced != "x" * 500 and len(replaced) == 32
    assert client.get("/missing").headers["X-Request-ID"]  # 404s carry one too


def test_exceptions_are_logged_as_one_json_line(json_lines) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("shoprank.test").exception("failed")
    (entry,) = json_lines()
    assert entry["level"] == "ERROR" and "ValueError: boom" in entry["exception"] and "request_id" not in entry


class _Plumbing:
    """A stand-in backend for the wrapper's plumbing only (the real backends have their own tests)."""

    def __init__(self) -> None:
        self.calls = 0

    def model_info(self, model: str) -> ModelInfo:
        return ModelInfo(model, "3", (TensorSpec("x", "float32", (-1, 2)),), (TensorSpec("y", "float32", (-1,)),), 8)

    def infer(self, model, inputs):
        self.calls += 1
        if len(inputs["x"]) == 0:
            raise RuntimeError("empty")
        return {"y": inputs["x"].sum(axis=1)}

    def newest_version(self, model: str) -> str:
        return "4"


def _sample(name: str, **labels) -> float:
    value = INFERENCE_REGISTRY.get_sample_value(name, labels) or 0.0
    assert value == (REGISTRY.get_sample_value(name, labels) or 0.0)  # also in the process-wide registry
    return value


def test_instrumented_backend_records_rows_latency_and_errors() -> None:
    backend = InstrumentedBackend(_Plumbing(), backend="plumbing")
    labels = {"backend": "plumbing", "model": "m"}
    before_rows, before_count = _sample("shoprank_inference_batch_size_sum", **labels), _sample(
        "shoprank_inference_latency_seconds_count", **labels)
    out = backend.infer("m", {"x": np.ones((5, 2), np.float32)})
    np.testing.assert_array_equal(out["y"], np.full(5, 2.0))
    assert _sample("shoprank_inference_batch_size_sum", **labels) == before_rows + 5
    assert _sample("shoprank_inference_latency_seconds_count", **labels) == before_count + 1
    before_errors = _sample("shoprank_inference_errors_total", error="RuntimeError", **labels)
    with pytest.raises(RuntimeError):
        backend.infer("m", {"x": np.ones((0, 2), np.float32)})
    assert _sample("shoprank_inference_errors_total", error="RuntimeError", **labels) == before_errors + 1
    assert backend.model_info("m").version == "3" and backend.newest_version("m") == "4"  # extras pass through
