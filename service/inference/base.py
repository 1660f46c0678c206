"""The one inference seam.

A backend runs a *named model* from ``model_repo/`` on already-tokenised numpy tensors and
returns numpy outputs. Two real implementations exist: embedded ONNX Runtime
(``onnx_local``) and Triton (``triton``). Tokenisation (``tokenize``) and post-processing
(``models``) happen once, on the client side, so both backends see identical tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model: its name, numpy dtype and shape (-1 = dynamic)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What a backend knows about a loaded model, read from the model itself or its config."""

    name: str
    version: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch: int
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)


class InferenceBackend(Protocol):
    """Runs named models; implementations: ``OnnxLocalBackend``, ``TritonBackend``."""

    def model_info(self, model: str) -> ModelInfo:
        """Metadata of the version currently served for ``model``."""
        ...

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch (first axis ≤ ``max_batch``) and return every output by name."""
        ...

    def reload(self) -> bool:
        """Pick up new model versions from the repository; True when something changed."""
        ...

    def close(self) -> None:
        ...
