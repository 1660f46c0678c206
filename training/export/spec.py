"""Triton model configuration as code: one spec per model, rendered to ``config.pbtxt``.

The same spec renders the production config (``onnxruntime_onnx`` platform, for NVIDIA's
image) and the test config (Python backend running the same ONNX file, for the
``tritonserver`` shipped in nvidia-pytriton).
"""

from __future__ import annotations

from dataclasses import dataclass, field

_DTYPES = {"int64": "TYPE_INT64", "float32": "TYPE_FP32", "int32": "TYPE_INT32"}


@dataclass(frozen=True)
class TensorConfig:
    name: str
    dtype: str  # numpy name: int64, float32
    dims: tuple[int, ...]  # without the batch axis; -1 = dynamic


@dataclass(frozen=True)
class ModelSpec:
    name: str
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    backend: str = "onnxruntime"  # or "python" (test repository)
    max_batch_size: int = 128
    preferred_batch_sizes: tuple[int, ...] = (8, 32, 64)
    max_queue_delay_us: int = 2000
    instance_count: int = 1
    instance_kind: str = "KIND_CPU"
    versions_served: int = 1
    parameters: dict[str, str] = field(default_factory=dict)


def _tensor(t: TensorConfig) -> str:
    dims = ", ".join(str(d) for d in t.dims)
    return f'  {{\n    name: "{t.name}"\n    data_type: {_DTYPES[t.dtype]}\n    dims: [ {dims} ]\n  }}'


def to_pbtxt(spec: ModelSpec) -> str:
    head = f'name: "{spec.name}"\n'
    head += 'platform: "onnxruntime_onnx"\n' if spec.backend == "onnxruntime" else f'backend: "{spec.backend}"\n'
    lines = [
        head + f"max_batch_size: {spec.max_batch_size}",
        "input [\n" + ",\n".join(_tensor(t) for t in spec.inputs) + "\n]",
        "output [\n" + ",\n".join(_tensor(t) for t in spec.outputs) + "\n]",
        "dynamic_batching {\n  preferred_batch_size: [ "
        + ", ".join(str(b) for b in spec.preferred_batch_sizes)
        + f" ]\n  max_queue_delay_microseconds: {spec.max_queue_delay_us}\n}}",
        f"instance_group [\n  {{\n    count: {spec.instance_count}\n    kind: {spec.instance_kind}\n  }}\n]",
        f"version_policy: {{ latest: {{ num_versions: {spec.versions_served} }} }}",
    ]
    for key, value in spec.parameters.items():
        lines.append(f'parameters {{\n  key: "{key}"\n  value: {{ string_value: "{value}" }}\n}}')
    return "\n".join(lines) + "\n"


def encoder_spec(name: str, dim: int) -> ModelSpec:
    token = TensorConfig("input_ids", "int64", (-1,))
    return ModelSpec(
        name=name,
        inputs=(token, TensorConfig("attention_mask", "int64", (-1,))),
        outputs=(TensorConfig("embedding", "float32", (dim,)),),
    )


def ranker_spec(name: str, *, with_task_id: bool = False) -> ModelSpec:
    inputs = [TensorConfig(n, "int64", (-1,)) for n in ("input_ids", "attention_mask", "token_type_ids")]
    if with_task_id:
        inputs.append(TensorConfig("task_id", "int64", ()))
    return ModelSpec(
        name=name,
        inputs=tuple(inputs),
        outputs=(TensorConfig("relevance_logits", "float32", (2,)), TensorConfig("engagement_logits", "float32", (2,))),
    )
