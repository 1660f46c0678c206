"""Triton backend of the inference seam: tritonclient over gRPC.

- Tensor names, dtypes and ``max_batch_size`` come from the server's model config, never from
  code; batches larger than ``max_batch_size`` are split and their outputs concatenated.
- One ``InferenceServerClient`` (gRPC) is shared by all threads: its unary calls are
  thread-safe (tritonclient's docstring), unlike the gevent-based HTTP client.
- Each model is pinned to the version it was first served at, so the tokenizer and card read
  from ``model_repo/<model>/<version>/`` always match the model that runs; ``reload()`` moves
  the pins to the newest ready versions (the server's model metadata), and a pinned version
  that the server has already unloaded is re-pinned and the call retried (no failed request
  during a swap).
- Transient failures (server down, deadline) are retried ``triton_retries`` times with
  back-off, then raise ``DependencyUnavailable(retry_after_s)`` → HTTP 503 + ``Retry-After``.
  The gRPC channel reconnects by itself within ``max_reconnect_backoff_ms`` once the server is
  back, so the service recovers without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from service.errors import DependencyUnavailable, NotFound
from service.inference.base import ModelInfo, TensorSpec
from service.settings import Settings

log = logging.getLogger(__name__)

_CONFIG_DTYPES = {"TYPE_INT64": "int64", "TYPE_FP32": "float32", "TYPE_INT32": "int32"}
_TRANSIENT = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.RESOURCE_EXHAUSTED"}


class _VersionGone(DependencyUnavailable):
    """The pinned version was unloaded (a newer one replaced it): re-pin, do not retry blindly.

    If it still escapes (a second swap raced the retry), the caller gets a retriable 503.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after_s=1)


def _is_version_gone(exc: InferenceServerException) -> bool:
    text = (exc.message() or "").lower()  # Triton: "Request for unknown model: 'm' version 1 is not at ready state"
    return "unknown model" in text and ("not at ready state" in text or "is not found" in text)


class TritonBackend:
    """Runs named models on a Triton server; implements ``InferenceBackend``."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.triton_url
        self._timeout_s = settings.triton_timeout_s
        self._retries = settings.triton_retries
        self._backoff_s = settings.triton_retry_backoff_s
        self._retry_after_s = settings.triton_retry_after_s
        reconnect_ms = int(settings.triton_reconnect_backoff_s * 1000)
        self._client = grpcclient.InferenceServerClient(url=self.url, channel_args=[
            ("grpc.max_send_message_length", 2**30), ("grpc.max_receive_message_length", 2**30),
            ("grpc.initial_reconnect_backoff_ms", min(100, reconnect_ms)),
            ("grpc.min_reconnect_backoff_ms", min(100, reconnect_ms)),
            ("grpc.max_reconnect_backoff_ms", reconnect_ms),
        ])
        self._lock = threading.Lock()
        self._served: dict[str, ModelInfo] = {}

    # ------------------------------------------------------------------ server calls with retries

    def _call(self, what: str, fn, *args, **kwargs):
        """Call the client; retry transient failures, then raise ``DependencyUnavailable``."""
        for attempt in range(self._retries + 1):
            try:
                return fn(*args, client_timeout=self._timeout_s, **kwargs)
            except InferenceServerException as exc:
                if _is_version_gone(exc):
                    raise _VersionGone(exc.message()) from exc
                if exc.status() not in _TRANSIENT:
                    raise
                if attempt == self._retries:
                    raise DependencyUnavailable(f"Triton at {self.url} did not answer {what}: {exc.message()}",
                                                retry_after_s=self._retry_after_s) from exc
                time.sleep(self._backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def ping(self, *, timeout_s: float) -> None:
        """Return when the server answers ready within ``timeout_s`` (``/readyz``), raise with the reason."""
        try:
            ready = self._client.is_server_ready(client_timeout=timeout_s)
        except InferenceServerException as exc:
            raise ConnectionError(f"Triton at {self.url}: {exc.message()}") from exc
        if not ready:
            raise ConnectionError(f"Triton at {self.url} answers but is not ready")

    def newest_version(self, model: str) -> str:
        """The newest version the server has READY for ``model`` (what ``reload`` would pin)."""
        try:
            meta = self._call(f"metadata of {model!r}", self._client.get_model_metadata, model)
        except (InferenceServerException, _VersionGone) as exc:
            if model in self._served:  # it served this model: a server shutting down or unloading, not a wrong name
                raise DependencyUnavailable(f"Triton at {self.url} has no ready version of {model!r} right now: {exc}",
                                            retry_after_s=self._retry_after_s) from exc
            raise NotFound(f"Triton at {self.url} does not serve model {model!r}: {exc}") from exc
        versions = sorted(int(v) for v in meta.versions if v.isdigit())
        if not versions:
            raise DependencyUnavailable(f"Triton has no ready version of {model!r}", retry_after_s=self._retry_after_s)
        return str(versions[-1])

    def _fetch_info(self, model: str, version: str) -> ModelInfo:
        response = self._call(f"config of {model}:{version}", self._client.get_model_config, model, version,
                              as_json=True)
        config = response["config"]
        max_batch = int(config.get("max_batch_size", 0))
        batch_axis = (-1,) if max_batch > 0 else ()

        def tensors(entries) -> tuple[TensorSpec, ...]:
            specs = []
            for t in entries:
                dims = tuple(int(d) for d in t.get("dims", []))
                if "reshape" in t:
                    dims = tuple(int(d) for d in t["reshape"].get("shape", []))
                specs.append(TensorSpec(t["name"], _CONFIG_DTYPES[t["data_type"]], batch_axis + dims))
            return tuple(specs)

        return ModelInfo(name=model, version=version, inputs=tensors(config["input"]), outputs=tensors(config["output"]),
                         max_batch=max_batch or 1 << 30,
                         extra={"backend": "triton", "url": self.url,
                                "platform": config.get("platform") or config.get("backend", "")})

    # ------------------------------------------------------------------ InferenceBackend

    def model_info(self, model: str) -> ModelInfo:
        info = self._served.get(model)
        if info is None:
            with self._lock:
                info = self._served.get(model)
                if info is None:
                    info = self._fetch_info(model, self.newest_version(model))
                    self._served[model] = info
                    log.info("triton: serving %s:%s from %s", model, info.version, self.url)
        return info

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        info = self.model_info(model)
        rows = len(next(iter(inputs.values())))
        if rows <= info.max_batch:
            return self._infer_pinned(model, inputs)
        parts = [self._infer_pinned(model, {k: v[start : start + info.max_batch] for k, v in inputs.items()})
                 for start in range(0, rows, info.max_batch)]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _infer_pinned(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        info = self.model_info(model)
        try:
            return self._infer_once(info, inputs)
        except _VersionGone as exc:
            log.info("triton: %s:%s went away (%s); re-pinning to the newest version", model, info.version, exc)
            self._repin(model)
            return self._infer_once(self.model_info(model), inputs)

    def _infer_once(self, info: ModelInfo, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = []
        for spec in info.inputs:
            value = np.ascontiguousarray(inputs[spec.name], dtype=spec.dtype)
            if value.ndim == 1 and len(spec.shape) == 1:  # a per-row scalar (task_id): the config's dims are [1],
                value = value.reshape(-1, 1)  # reshaped to [] for the model, so the wire carries [batch, 1]
            tensor = grpcclient.InferInput(spec.name, list(value.shape), np_to_triton_dtype(value.dtype))
            tensor.set_data_from_numpy(value)
            request.append(tensor)
        outputs = [grpcclient.InferRequestedOutput(spec.name) for spec in info.outputs]
        result = self._call(f"inference on {info.name}:{info.version}", self._client.infer, info.name, request,
                            model_version=info.version, outputs=outputs)
        return {spec.name: result.as_numpy(spec.name) for spec in info.outputs}

    def _repin(self, model: str) -> bool:
        newest = self.newest_version(model)
        with self._lock:
            current = self._served.get(model)
            if current is not None and current.version == newest:
                return False
            self._served[model] = self._fetch_info(model, newest)
        log.info("triton: %s now pinned to version %s", model, newest)
        return True

    def reload(self) -> bool:
        """Move every pinned model to the newest version the server has ready; True if any moved."""
        changed = False
        for model in list(self._served):
            try:
                changed |= self._repin(model)
            except DependencyUnavailable as exc:
                log.warning("triton: reload skipped for %s: %s", model, exc.message)
        return changed

    def close(self) -> None:
        self._client.close()
