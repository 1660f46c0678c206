"""First phase → ONNX (legacy exporter, opset 17, dynamic batch) + card + Triton config, and its parity.

Written into ``<repo>/first_phase/<version>/`` (``model.onnx``, ``shoprank.json``) with
``<repo>/first_phase/config.pbtxt`` rendered from ``first_phase_spec`` (config as code). fp32: the
model is a few MB and microseconds per pair, int8 would save nothing worth its error. The version
directory is built aside and renamed into place, so a polling Triton never sees half of it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from training.export.spec import first_phase_spec, write_config
from training.first_phase.model import FirstPhaseModel

INPUTS = ["query_embedding", "item_embedding", "task_id"]
OUTPUTS = ["relevance_logits", "engagement_logits"]


def export_onnx(model: FirstPhaseModel, path: Path) -> Path:
    dim = model.shape.dim
    args = (torch.zeros(2, dim), torch.zeros(2, dim), torch.zeros(2, dtype=torch.long))
    axes = {name: {0: "batch"} for name in INPUTS + OUTPUTS}
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, args, str(path), input_names=INPUTS, output_names=OUTPUTS, dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    import onnx

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return path


def onnx_parity(onnx_path: Path, model: FirstPhaseModel, left: np.ndarray, right: np.ndarray,
                task_id: np.ndarray) -> dict:
    """Max |ONNX Runtime − torch| over both outputs on the given rows."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = {"query_embedding": left.astype(np.float32), "item_embedding": right.astype(np.float32),
            "task_id": task_id.astype(np.int64)}
    got = dict(zip(OUTPUTS, session.run(OUTPUTS, feed)))
    model.eval()
    with torch.no_grad():
        want = model(*(torch.from_numpy(feed[n]) for n in INPUTS))
    diffs = {f"max_abs_diff_{name}": float(np.max(np.abs(got[name] - w.numpy()))) if len(left) else 0.0
             for name, w in zip(OUTPUTS, want)}
    return {"rows": len(left)} | diffs


def write_version(*, model: FirstPhaseModel, repo: Path, version: int, card: dict, name: str = "first_phase",
                  parity_rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Path:
    """Export the model as ``<repo>/<name>/<version>``; the card gets ``parity`` when rows are given."""
    model_dir = repo / name
    staging = model_dir / f".staging-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    export_onnx(model, staging / "model.onnx")
    if parity_rows is not None:
        card = card | {"parity": onnx_parity(staging / "model.onnx", model, *parity_rows)}
    (staging / "shoprank.json").write_text(json.dumps(card | {"kind": "first_phase", "precision": "fp32"}, indent=2))
    write_config(first_phase_spec(name, model.shape.dim), model_dir)
    target = model_dir / str(version)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target
