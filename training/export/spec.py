"""Triton model configuration as code: one spec per model, to and from ``config.pbtxt``.

The same spec renders the production config (``onnxruntime_onnx`` platform, for NVIDIA's
image) and the test config (Python backend running the same ONNX file, for the
``tritonserver`` shipped in nvidia-pytriton; see ``python_backend.py``). Rendering and
parsing go through Triton's own ``ModelConfig`` protobuf (shipped in tritonclient) and
protobuf's ``text_format``, so what we write is what Triton reads; ``from_pbtxt`` checks
the parts ShopRank relies on and refuses anything else with ``InvalidModelConfig``
(round-trip tested in ``tests/unit/test_model_spec.py``, after pytriton's model_config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

_DTYPES = {"int64": pb.TYPE_INT64, "float32": pb.TYPE_FP32, "int32": pb.TYPE_INT32}
_NUMPY = {value: key for key, value in _DTYPES.items()}
_PLATFORMS = {"onnxruntime": "onnxruntime_onnx"}  # backends that Triton names by platform
_KINDS = ("KIND_CPU", "KIND_GPU", "KIND_AUTO")


class InvalidModelConfig(ValueError):
    """A ``config.pbtxt`` that does not parse or does not describe a model ShopRank can serve."""


@dataclass(frozen=True)
class TensorConfig:
    name: str
    dtype: str  # numpy name: int64, float32, int32
    dims: tuple[int, ...]  # without the batch axis; -1 = dynamic; () = one value per row


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


# --------------------------------------------------------------------------- spec → protobuf → text


def _tensor_proto(t: TensorConfig, message) -> None:
    message.name = t.name
    message.data_type = _DTYPES[t.dtype]
    if t.dims:
        message.dims.extend(t.dims)
    else:  # Triton needs ≥ 1 dim: a per-row scalar is [1] reshaped to [] (Triton's documented idiom)
        message.dims.append(1)
        message.reshape.SetInParent()


def to_proto(spec: ModelSpec) -> pb.ModelConfig:
    """The spec as Triton's ``ModelConfig`` message."""
    config = pb.ModelConfig(name=spec.name, max_batch_size=spec.max_batch_size)
    if spec.backend in _PLATFORMS:
        config.platform = _PLATFORMS[spec.backend]
    else:
        config.backend = spec.backend
    for t in spec.inputs:
        _tensor_proto(t, config.input.add())
    for t in spec.outputs:
        _tensor_proto(t, config.output.add())
    config.dynamic_batching.preferred_batch_size.extend(spec.preferred_batch_sizes)
    config.dynamic_batching.max_queue_delay_microseconds = spec.max_queue_delay_us
    config.instance_group.add(count=spec.instance_count, kind=pb.ModelInstanceGroup.Kind.Value(spec.instance_kind))
    config.version_policy.latest.num_versions = spec.versions_served
    for key, value in spec.parameters.items():
        config.parameters[key].string_value = value
    return config


def to_pbtxt(spec: ModelSpec) -> str:
    return text_format.MessageToString(to_proto(validate(spec)))


def write_config(spec: ModelSpec, model_dir: Path) -> Path:
    """Write ``<model_dir>/config.pbtxt`` from the spec; returns its path."""
    path = model_dir / "config.pbtxt"
    path.write_text(to_pbtxt(spec))
    return path


# --------------------------------------------------------------------------- text → protobuf → spec


def _tensor_spec(message, where: str) -> TensorConfig:
    if not message.name:
        raise InvalidModelConfig(f"{where}: a tensor without a name")
    if message.data_type not in _NUMPY:
        raise InvalidModelConfig(f"{where} {message.name!r}: unsupported data_type {pb.DataType.Name(message.data_type)}")
    dims = tuple(message.dims)
    if message.HasField("reshape"):
        if dims != (1,) or tuple(message.reshape.shape):
            raise InvalidModelConfig(f"{where} {message.name!r}: only the per-row scalar reshape [1] → [] is supported")
        dims = ()
    elif not dims:
        raise InvalidModelConfig(f"{where} {message.name!r}: dims must not be empty")
    return TensorConfig(message.name, _NUMPY[message.data_type], dims)


def from_proto(config: pb.ModelConfig) -> ModelSpec:
    """Triton's ``ModelConfig`` message as a validated spec (``InvalidModelConfig`` otherwise)."""
    if config.platform and config.backend:
        raise InvalidModelConfig("set either platform or backend, not both")
    by_platform = {platform: backend for backend, platform in _PLATFORMS.items()}
    if config.platform:
        if config.platform not in by_platform:
            raise InvalidModelConfig(f"unsupported platform {config.platform!r}")
        backend = by_platform[config.platform]
    elif config.backend:
        backend = config.backend
    else:
        raise InvalidModelConfig("neither platform nor backend is set")
    if len(config.instance_group) != 1:
        raise InvalidModelConfig(f"expected one instance_group, found {len(config.instance_group)}")
    group = config.instance_group[0]
    policy = config.version_policy.WhichOneof("policy_choice")
    if policy not in (None, "latest"):
        raise InvalidModelConfig(f"only the 'latest' version policy is supported, found {policy!r}")
    spec = ModelSpec(
        name=config.name,
        inputs=tuple(_tensor_spec(t, "input") for t in config.input),
        outputs=tuple(_tensor_spec(t, "output") for t in config.output),
        backend=backend,
        max_batch_size=config.max_batch_size,
        preferred_batch_sizes=tuple(config.dynamic_batching.preferred_batch_size),
        max_queue_delay_us=config.dynamic_batching.max_queue_delay_microseconds,
        instance_count=group.count or 1,
        instance_kind=pb.ModelInstanceGroup.Kind.Name(group.kind),
        versions_served=config.version_policy.latest.num_versions if policy else 1,
        parameters={key: value.string_value for key, value in sorted(config.parameters.items())},
    )
    return validate(spec)


def from_pbtxt(text: str) -> ModelSpec:
    """Parse a ``config.pbtxt``; raises ``InvalidModelConfig`` with the reason when it is not usable."""
    try:
        config = text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as exc:
        raise InvalidModelConfig(f"config.pbtxt does not parse: {exc}") from exc
    return from_proto(config)


def read_config(model_dir: Path) -> ModelSpec:
    return from_pbtxt((model_dir / "config.pbtxt").read_text())


def validate(spec: ModelSpec) -> ModelSpec:
    """Refuse specs Triton would reject or ShopRank cannot serve; returns the spec unchanged."""
    problems = []
    if not spec.name:
        problems.append("the model has no name")
    if not spec.inputs or not spec.outputs:
        problems.append("a model needs at least one input and one output")
    names = [t.name for t in spec.inputs + spec.outputs]
    if len(set(names)) != len(names):
        problems.append(f"tensor names repeat: {names}")
    for t in spec.inputs + spec.outputs:
        if t.dtype not in _DTYPES:
            problems.append(f"{t.name!r}: dtype {t.dtype!r} is not one of {sorted(_DTYPES)}")
        if any(d == 0 or d < -1 for d in t.dims):
            problems.append(f"{t.name!r}: dims {t.dims} must be positive or -1")
    if spec.max_batch_size < 1:
        problems.append("max_batch_size must be ≥ 1 (ShopRank always batches on the first axis)")
    if any(b < 1 or b > spec.max_batch_size for b in spec.preferred_batch_sizes):
        problems.append(f"preferred_batch_sizes {spec.preferred_batch_sizes} must lie in 1..max_batch_size")
    if spec.max_queue_delay_us < 0:
        problems.append("max_queue_delay_us must be ≥ 0")
    if spec.instance_count < 1 or spec.instance_kind not in _KINDS:
        problems.append(f"instance group {spec.instance_count} × {spec.instance_kind} is not valid")
    if spec.versions_served < 1:
        problems.append("versions_served must be ≥ 1")
    if problems:
        raise InvalidModelConfig(f"model {spec.name!r}: " + "; ".join(problems))
    return spec


# --------------------------------------------------------------------------- ShopRank's two models


def encoder_spec(name: str, dim: int) -> ModelSpec:
    """Bi-encoder tower. Two versions stay served so the old index keeps its encoder while a new
    encoder version re-embeds the catalogue in the background (``service/model_swap.py``)."""
    token = TensorConfig("input_ids", "int64", (-1,))
    return ModelSpec(
        name=name,
        inputs=(token, TensorConfig("attention_mask", "int64", (-1,))),
        outputs=(TensorConfig("embedding", "float32", (dim,)),),
        versions_served=2,
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


def first_phase_spec(name: str = "first_phase", dim: int = 384) -> ModelSpec:
    """The first phase of phased ranking: two embeddings and a task → the ranker's four logits.

    An MLP costs microseconds per pair, so it takes large batches (a request's every candidate at once)."""
    return ModelSpec(
        name=name,
        inputs=(TensorConfig("query_embedding", "float32", (dim,)), TensorConfig("item_embedding", "float32", (dim,)),
                TensorConfig("task_id", "int64", ())),
        outputs=(TensorConfig("relevance_logits", "float32", (2,)), TensorConfig("engagement_logits", "float32", (2,))),
        max_batch_size=1024,
        preferred_batch_sizes=(64, 256, 1024),
    )
