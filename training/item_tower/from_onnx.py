"""The served student as torch weights, rebuilt from its int8 ONNX file (dequantised).

Written by hand: no library turns ONNX Runtime's dynamic int8 quantisation back into a transformers
checkpoint. The export (``training/export/onnx_export.py``) names every quantised MatMul after the
module it came from (``/encoder/encoder/layer.0/attention/self/query/MatMul_quant``), which is what maps
a weight back to its BERT parameter; the one MatMul outside the encoder is the adaptor map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from transformers import AutoModel, BertModel

from training.base_model import base_model_path


def _dequantise(values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    return (values.astype(np.float32) - zero_point.astype(np.float32)) * scale.astype(np.float32)


def student_from_onnx(model_file: Path) -> tuple[BertModel, torch.Tensor | None]:
    """(the encoder, the adaptor's [out, in] weight or None) of an exported encoder's ``model.onnx``.

    The architecture comes from the base checkpoint (the export keeps it); every tensor from the file."""
    graph = onnx.load(str(model_file)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    encoder: BertModel = AutoModel.from_pretrained(base_model_path())
    state: dict[str, torch.Tensor] = {}
    projection = None
    for name, value in tensors.items():  # fp32 tensors keep their torch names (minus the graph's "encoder.")
        if name.startswith("encoder.") and value.dtype == np.float32 and value.ndim >= 1:
            state[name.removeprefix("encoder.")] = torch.from_numpy(value.copy())
    for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        base = f"encoder.embeddings.{table}.weight"
        if base + "_quantized" in tensors:
            state[f"embeddings.{table}.weight"] = torch.from_numpy(_dequantise(
                tensors[base + "_quantized"], tensors[base + "_scale"], tensors[base + "_zero_point"]))
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            continue
        weight = node.input[1].removesuffix("_quantized")
        matrix = _dequantise(tensors[node.input[1]], tensors[weight + "_scale"], tensors[weight + "_zero_point"]).T
        module = node.name.removesuffix("/MatMul_quant").removeprefix("/encoder/")
        if module == "":  # the adaptor: pooled @ W.T, after the encoder
            projection = torch.from_numpy(matrix.copy())
        else:
            state[module.replace("/", ".") + ".weight"] = torch.from_numpy(matrix.copy())
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.startswith("pooler.")]  # the export has no pooler
    if missing or unexpected:
        raise ValueError(f"{model_file}: weights not rebuilt {missing}, not understood {unexpected}")
    return encoder.eval(), projection
