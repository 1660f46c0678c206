"""Embedded backend: ONNX Runtime sessions in process, one per model, swapped atomically."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.inference.base import ModelInfo, TensorSpec
from service.inference.repository import ModelVersion, latest_version

_ORT_TO_NUMPY = {"tensor(int64)": "int64", "tensor(float)": "float32", "tensor(int32)": "int32"}


class OnnxLocalBackend:
    """Serves the newest version of each requested model with ONNX Runtime on the CPU."""

    def __init__(self, repo: Path, *, intra_op_threads: int = 2, max_batch: int = 256,
                 allow_spinning: bool = True) -> None:
        self._repo = repo
        self._threads = intra_op_threads
        self._allow_spinning = allow_spinning
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._loaded: dict[str, tuple[ModelVersion, ort.InferenceSession, ModelInfo]] = {}

    def _session(self, version: ModelVersion) -> tuple[ort.InferenceSession, ModelInfo]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads spin by default; on a small box shared with other processes that
        # burns the cores they need (docs/indexing.md measures it), so it is a setting.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self._allow_spinning else "0")
        session = ort.InferenceSession(str(version.onnx_path), opts, providers=["CPUExecutionProvider"])
        info = ModelInfo(
            name=version.name,
            version=str(version.version),
            inputs=tuple(TensorSpec(i.name, _ORT_TO_NUMPY.get(i.type, "float32"), tuple(-1 if not isinstance(d, int) else d for d in i.shape)) for i in session.get_inputs()),
            outputs=tuple(TensorSpec(o.name, _ORT_TO_NUMPY.get(o.type, "float32"), tuple(-1 if not isinstance(d, int) else d for d in o.shape)) for o in session.get_outputs()),
            max_batch=self._max_batch,
        )
        return session, info

    def _entry(self, model: str):
        entry = self._loaded.get(model)
        if entry is None:
            with self._lock:
                entry = self._loaded.get(model)
                if entry is None:
                    version = latest_version(self._repo, model)
                    entry = (version, *self._session(version))
                    self._loaded[model] = entry
        return entry

    def model_info(self, model: str) -> ModelInfo:
        return self._entry(model)[2]

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        _, session, info = self._entry(model)
        feed = {name: inputs[name] for name in info.input_names}
        values = session.run(None, feed)
        return {spec.name: value for spec, value in zip(info.outputs, values)}

    def reload(self) -> bool:
        """Load any newer version beside the old one, then swap the reference (no failed calls)."""
        changed = False
        for model, (version, _, _) in list(self._loaded.items()):
            newest = latest_version(self._repo, model)
            if newest.version != version.version:
                self._loaded[model] = (newest, *self._session(newest))
                changed = True
        return changed

    def close(self) -> None:
        self._loaded.clear()
