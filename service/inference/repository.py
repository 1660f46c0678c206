"""Reading the Triton-layout model repository: ``<model>/<version>/model.onnx`` + sidecars.

Each version directory also holds ``tokenizer.json`` and ``shoprank.json`` (the model's
card: kind, tasks, routing, dims, metrics), so a new version brings its own tokeniser and
routing and can be swapped in without code changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from service.errors import NotFound


@dataclass(frozen=True)
class ModelVersion:
    """One version directory of one model in the repository."""

    name: str
    version: int
    path: Path

    @property
    def onnx_path(self) -> Path:
        return self.path / "model.onnx"

    @property
    def tokenizer_path(self) -> Path:
        return self.path / "tokenizer.json"

    @property
    def card(self) -> dict:
        card_path = self.path / "shoprank.json"
        return json.loads(card_path.read_text()) if card_path.exists() else {}

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.version}"


def latest_version(repo: Path, model: str) -> ModelVersion:
    """The highest numbered complete version (has ``model.onnx``) of ``model``."""
    model_dir = repo / model
    versions = sorted(
        (int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit() and (p / "model.onnx").exists()),
    )
    if not versions:
        raise NotFound(f"model {model!r} has no version with model.onnx under {model_dir}")
    return ModelVersion(name=model, version=versions[-1], path=model_dir / str(versions[-1]))
