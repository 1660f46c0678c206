"""Triton config as code: spec → config.pbtxt → parsed → spec, on valid and invalid files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from training.export.python_backend import MODEL_PY, python_backend_repository
from training.export.spec import (
    InvalidModelConfig,
    ModelSpec,
    TensorConfig,
    encoder_spec,
    first_phase_spec,
    from_pbtxt,
    ranker_spec,
    read_config,
    to_pbtxt,
    write_config,
)

REPO = Path(__file__).resolve().parents[2] / "model_repo"

SPECS = [
    encoder_spec("encoder", 384),
    ranker_spec("ranker"),
    ranker_spec("ranker_mh", with_task_id=True),
    first_phase_spec("first_phase", 384),
    dataclasses.replace(ranker_spec("ranker"), backend="python", instance_count=2, instance_kind="KIND_GPU",
                        preferred_batch_sizes=(4, 16), max_queue_delay_us=500, versions_served=3,
                        parameters={"intra_op_thread_count": "2", "b": "x y"}),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.name}-{s.backend}")
def test_spec_round_trips_through_pbtxt(spec: ModelSpec) -> None:
    text = to_pbtxt(spec)
    assert from_pbtxt(text) == spec
    assert to_pbtxt(from_pbtxt(text)) == text


def test_rendered_config_has_what_triton_needs() -> None:
    text = to_pbtxt(ranker_spec("ranker", with_task_id=True))
    assert 'platform: "onnxruntime_onnx"' in text and "backend:" not in text
    assert "max_batch_size: 128" in text and "max_queue_delay_microseconds: 2000" in text
    assert "preferred_batch_size: 32" in text and "kind: KIND_CPU" in text
    assert "num_versions: 1" in text
    task = text[text.index('name: "task_id"'):]
    assert "dims: 1" in task.split("}")[0] and "reshape {" in task  # per-row scalar: [1] reshaped to []
    assert 'backend: "python"' in to_pbtxt(dataclasses.replace(ranker_spec("r"), backend="python"))


def test_first_phase_takes_two_vectors_and_a_task_and_large_batches() -> None:
    spec = first_phase_spec("first_phase", 384)
    assert [(t.name, t.dtype, t.dims) for t in spec.inputs] == [
        ("query_embedding", "float32", (384,)), ("item_embedding", "float32", (384,)), ("task_id", "int64", ())]
    assert [t.name for t in spec.outputs] == [t.name for t in ranker_spec("ranker").outputs]  # the ranker's outputs
    assert spec.max_batch_size == 1024 and "max_batch_size: 1024" in to_pbtxt(spec)


def test_encoder_keeps_two_versions_for_background_reembedding() -> None:
    assert encoder_spec("encoder", 384).versions_served == 2


@pytest.mark.parametrize("model_dir", sorted(p.parent for p in REPO.glob("*/config.pbtxt")), ids=lambda p: p.name)
def test_model_repo_configs_are_generated_from_the_spec(model_dir: Path) -> None:
    text = (model_dir / "config.pbtxt").read_text()
    spec = from_pbtxt(text)
    assert spec.name == model_dir.name
    assert to_pbtxt(spec) == text


_VALID = to_pbtxt(ranker_spec("ranker"))

INVALID = {
    "does not parse": "name: 'x' max_batch_size: [",
    "unknown field": _VALID + "\nnot_a_field: 3\n",
    "neither platform nor backend": _VALID.replace('platform: "onnxruntime_onnx"\n', ""),
    "both platform and backend": _VALID + 'backend: "python"\n',
    "unsupported platform": _VALID.replace("onnxruntime_onnx", "tensorflow_savedmodel"),
    "string tensor": _VALID.replace("TYPE_FP32", "TYPE_STRING", 1),
    "zero dim": _VALID.replace("dims: 2", "dims: 0", 1),
    "no batching": _VALID.replace("max_batch_size: 128", "max_batch_size: 0"),
    "preferred above max": _VALID.replace("preferred_batch_size: 64", "preferred_batch_size: 256"),
    "no outputs": _VALID[: _VALID.index("output {")] + _VALID[_VALID.index("instance_group"):],
    "two instance groups": _VALID + "instance_group {\n  count: 1\n  kind: KIND_CPU\n}\n",
    "specific version policy": _VALID.replace("latest {\n    num_versions: 1\n  }", "specific {\n    versions: 3\n  }"),
    "repeated tensor name": _VALID.replace('name: "attention_mask"', 'name: "input_ids"'),
    "unsupported reshape": _VALID.replace("dims: 2\n", "dims: 2\n  reshape {\n    shape: 2\n  }\n", 1),
}


@pytest.mark.parametrize("why", sorted(INVALID))
def test_invalid_configs_are_refused_with_a_reason(why: str) -> None:
    with pytest.raises(InvalidModelConfig) as info:
        from_pbtxt(INVALID[why])
    assert str(info.value)


def test_invalid_spec_is_refused_before_writing(tmp_path: Path) -> None:
    bad = ModelSpec(name="m", inputs=(TensorConfig("x", "float16", (-1,)),), outputs=(TensorConfig("y", "float32", (2,)),))
    with pytest.raises(InvalidModelConfig, match="float16"):
        write_config(bad, tmp_path)
    assert not (tmp_path / "config.pbtxt").exists()


def test_python_backend_repository_mirrors_the_production_repository(tmp_path: Path) -> None:
    source = tmp_path / "model_repo"
    (source / "ranker" / "1").mkdir(parents=True)
    (source / "ranker" / "1" / "model.onnx").write_bytes(b"onnx")
    (source / "ranker" / "1" / "tokenizer.json").write_text("{}")
    (source / "ranker" / "2").mkdir()  # incomplete version: no model.onnx, not mirrored
    write_config(ranker_spec("ranker"), source / "ranker")

    target = python_backend_repository(source_repo=source, target_repo=tmp_path / "test_repo", intra_op_threads=3)

    spec = read_config(target / "ranker")
    assert spec.backend == "python" and spec.parameters == {"intra_op_thread_count": "3"}
    assert dataclasses.replace(spec, backend="onnxruntime", parameters={}) == ranker_spec("ranker")
    version = target / "ranker" / "1"
    assert (version / "model.onnx").resolve() == (source / "ranker" / "1" / "model.onnx").resolve()
    assert (version / "model.py").read_text() == MODEL_PY.read_text()
    assert list((version / "__pycache__").glob("model.*.pyc"))  # precompiled: the stub writes nothing there
    assert not (target / "ranker" / "2").exists()
    assert not list((target / "ranker").glob(".staging-*"))
