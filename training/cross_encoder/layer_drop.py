"""Rebuild a served ranker in torch from its int8 ONNX file, and drop transformer layers from it.

The shipped ranker (``model_repo/ranker/<v>/model.onnx``) is the only copy of its weights: dynamic
int8 quantisation (onnxruntime ``quantize_dynamic``, per-channel) stores every linear layer as an
int8 ``MatMulInteger`` weight [in, out] with one scale (and zero point) per output channel, the
embedding tables and ordinal thresholds as uint8 with one scale per tensor, and biases and
LayerNorms in fp32. Dequantising them, ``(q − zero_point) · scale``, gives fp32 weights within half
a quantisation step of the trained ones, enough to start a student from (the int8 model itself runs
on those very weights).

``drop_layers`` keeps a subset of the encoder's transformer layers (DistilBERT's and the eBay
cross-encoder's initialisation of a shallower student from its teacher: every other layer).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.base_model import base_model_path
from training.cross_encoder.model import UnifiedRanker

_GRAPH_PREFIX = "/ranker/"  # node names of the exported _RankerGraph: /ranker/<module path>/…
_PARAM_PREFIX = "ranker."  # initializer names: ranker.<parameter name>


def _dequantise(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, *, axis: int | None) -> np.ndarray:
    q = q.astype(np.float32)
    if axis is None or scale.ndim == 0:
        return (q - zero_point.astype(np.float32)) * scale
    shape = [1] * q.ndim
    shape[axis] = -1
    return (q - zero_point.astype(np.float32).reshape(shape)) * scale.reshape(shape)


def dequantised_state_dict(onnx_path: Path) -> dict[str, torch.Tensor]:
    """The ``UnifiedRanker`` parameters stored in an exported ranker ONNX file (int8 or fp32), as fp32.

    Linear weights are found through the ``MatMulInteger`` (int8) or ``MatMul`` (fp32) node that uses
    them, whose name carries the module path; everything else is named after its parameter."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for node in graph.node:
        if node.op_type not in ("MatMulInteger", "MatMul") or not node.name.startswith(_GRAPH_PREFIX):
            continue
        weight_name = node.input[1]
        if weight_name not in arrays:
            continue  # an activation × activation product (attention scores)
        module = node.name[len(_GRAPH_PREFIX):].rsplit("/", 1)[0].replace("/", ".")  # encoder.encoder.layer.0.attention.self.query
        if node.op_type == "MatMulInteger":
            base = weight_name.removesuffix("_quantized")
            weight = _dequantise(arrays[weight_name], arrays[base + "_scale"], arrays[node.input[3]], axis=1)
            used |= {weight_name, base + "_scale", node.input[3]}
        else:
            weight = arrays[weight_name]
            used.add(weight_name)
        state[f"{module}.weight"] = torch.from_numpy(np.ascontiguousarray(weight.T))  # [in, out] → torch [out, in]
    for name, value in arrays.items():
        if name in used or not name.startswith(_PARAM_PREFIX) or name.endswith(("_scale", "_zero_point")):
            continue
        if name.endswith("_quantized"):
            base = name.removesuffix("_quantized")
            value = _dequantise(value, arrays[base + "_scale"], arrays[base + "_zero_point"], axis=None)
            name = base
        if "_Transposed" in name:
            continue  # a Gemm weight not consumed by a recognised node: leave the module's own
        state[name[len(_PARAM_PREFIX):]] = torch.from_numpy(np.array(value, dtype=np.float32))
    return state


def ranker_from_onnx(version_dir: Path) -> tuple[UnifiedRanker, dict]:
    """A torch ``UnifiedRanker`` with the weights of an exported version (its card gives tasks and routing).

    Only the ``prefix`` routing (one head, no ``task_id`` input) is rebuilt: it is what the recipe serves."""
    card = json.loads((version_dir / "shoprank.json").read_text())
    if card.get("routing", "prefix") != "prefix":
        raise ValueError(f"{version_dir}: only prefix-routed rankers can be rebuilt, not {card['routing']!r}")
    model = UnifiedRanker(base_model_path(), tasks=card["tasks"], routing="prefix")
    state = dequantised_state_dict(version_dir / "model.onnx")
    missing, unexpected = model.load_state_dict(state, strict=False)
    # the BERT pooler is not in the graph (mean pooling reads the last hidden state); buffers are not parameters
    missing = [k for k in missing if ".pooler." not in k and not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"{version_dir}: weights do not line up with UnifiedRanker (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")
    model.eval()
    return model, card


def drop_layers(model: UnifiedRanker, keep: list[int]) -> UnifiedRanker:
    """Keep only the transformer layers ``keep`` (in order) of the encoder, in place."""
    layers = model.encoder.encoder.layer
    if not keep or sorted(set(keep)) != list(keep) or keep[-1] >= len(layers) or keep[0] < 0:
        raise ValueError(f"keep must be increasing layer indices in 0..{len(layers) - 1}, got {keep}")
    if model.private is not None:
        raise ValueError("layer dropping is for shared-encoder routings (prefix, multihead)")
    model.encoder.encoder.layer = nn.ModuleList([layers[i] for i in keep])
    model.encoder.config.num_hidden_layers = len(keep)
    return model


def write_artifact(model: UnifiedRanker, meta: dict, out_dir: Path) -> Path:
    """Save as a ranker artifact (``model.pt``, ``config.json``, ``tokenizer/``) that ``load_ranker``,
    ``TorchPairScorer`` and ``export_ranker`` read; ``meta['kept_layers']`` records the layer drop."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / "model.pt")
    (out_dir / "config.json").write_text(json.dumps(meta, indent=2))
    tokenizer_dir = out_dir / "tokenizer"
    if not tokenizer_dir.exists():
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(base_model_path()).save_pretrained(tokenizer_dir)
    return out_dir

