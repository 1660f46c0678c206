"""Prometheus metrics of the inference seam, the same for every backend.

``InstrumentedBackend`` wraps any ``InferenceBackend`` (``factory.make_backend`` applies it),
so embedded ONNX Runtime and Triton report the same series, labelled by ``backend`` and
``model``: rows per call (batch size), wall time per call, and errors by type; plus the hot
model swaps (``service/model_swap.py``). They live in ``INFERENCE_REGISTRY``, which the API's
per-app ``/metrics`` registry includes (``service/api/app.py``) and the process-wide default
registry too (the indexer's metrics server).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from service.inference.base import InferenceBackend, ModelInfo

INFERENCE_REGISTRY = CollectorRegistry()
REGISTRY.register(INFERENCE_REGISTRY)  # the indexer's metrics server serves the default registry

INFERENCE_BATCH_ROWS = Histogram(
    "shoprank_inference_batch_size", "Rows in one inference call, per backend and model",
    ["backend", "model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=INFERENCE_REGISTRY,
)
INFERENCE_LATENCY_S = Histogram(
    "shoprank_inference_latency_seconds", "Wall time of one inference call (client side), per backend and model",
    ["backend", "model"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=INFERENCE_REGISTRY,
)
INFERENCE_ERRORS = Counter(
    "shoprank_inference_errors_total", "Inference calls that raised, per backend, model and error type",
    ["backend", "model", "error"], registry=INFERENCE_REGISTRY,
)
MODEL_SWAPS = Counter(
    "shoprank_model_swaps_total", "Hot model swaps by outcome: ranker, encoder (re-embedded) or failed",
    ["outcome"], registry=INFERENCE_REGISTRY,
)


class InstrumentedBackend:
    """An ``InferenceBackend`` that records batch size, latency and errors of the backend it wraps."""

    def __init__(self, inner: InferenceBackend, *, backend: str) -> None:
        self.inner = inner
        self.backend = backend

    def model_info(self, model: str) -> ModelInfo:
        return self.inner.model_info(model)

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(inputs.values()))) if inputs else 0
        start = time.perf_counter()
        try:
            outputs = self.inner.infer(model, inputs)
        except Exception as exc:
            INFERENCE_ERRORS.labels(self.backend, model, type(exc).__name__).inc()
            raise
        INFERENCE_LATENCY_S.labels(self.backend, model).observe(time.perf_counter() - start)
        INFERENCE_BATCH_ROWS.labels(self.backend, model).observe(rows)
        return outputs

    def reload(self) -> bool:
        return self.inner.reload()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str):
        """Backend-specific extras (e.g. ``TritonBackend.newest_version``) pass through."""
        return getattr(self.inner, name)
