"""Generate the TEST model repository: the production ``model_repo/`` served by Triton's Python backend.

Each model's ``config.pbtxt`` is parsed back into its ``ModelSpec`` and rendered again with
``backend: "python"`` (same tensors, batching, instance group and version policy); each
version directory links the same ``model.onnx``, ``tokenizer.json`` and ``shoprank.json``
and gets ``model.py`` (``triton_python_model.py``), which runs the ONNX file with ONNX
Runtime. So the tests exercise exactly the production files through a real ``tritonserver``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import py_compile
import shutil
from pathlib import Path

from training.export.spec import read_config, write_config

MODEL_PY = Path(__file__).with_name("triton_python_model.py")
_SIDECARS = ("model.onnx", "tokenizer.json", "shoprank.json")


def python_backend_version(*, source_version_dir: Path, target_model_dir: Path) -> Path:
    """Mirror one version directory into the test repository, atomically (built aside, then renamed).

    Triton polls the repository, so a half-written version must never be visible under its number.
    """
    target = target_model_dir / source_version_dir.name
    staging = target_model_dir / f".staging-{source_version_dir.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in _SIDECARS:
        if (source_version_dir / name).exists():
            (staging / name).symlink_to((source_version_dir / name).resolve())
    shutil.copy(MODEL_PY, staging / "model.py")
    # Compile model.py now (hash-checked pyc): otherwise the backend stub writes __pycache__/ on first
    # import, which Triton's repository poll takes for a changed model and reloads it once.
    py_compile.compile(str(staging / "model.py"), cfile=importlib.util.cache_from_source(str(staging / "model.py")),
                       doraise=True, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    staging.rename(target)
    return target


def python_backend_repository(*, source_repo: Path, target_repo: Path, models: tuple[str, ...] | None = None,
                              intra_op_threads: int = 1) -> Path:
    """Write ``target_repo`` serving every (or the named) model of ``source_repo`` with the Python backend."""
    names = models or tuple(sorted(p.name for p in source_repo.iterdir() if (p / "config.pbtxt").exists()))
    for name in names:
        spec = read_config(source_repo / name)
        params = spec.parameters | {"intra_op_thread_count": str(intra_op_threads)}
        test_spec = dataclasses.replace(spec, backend="python", parameters=params)
        model_dir = target_repo / name
        model_dir.mkdir(parents=True, exist_ok=True)
        write_config(test_spec, model_dir)
        for version_dir in sorted(source_repo.glob(f"{name}/[0-9]*")):
            if (version_dir / "model.onnx").exists() and not (model_dir / version_dir.name).exists():
                python_backend_version(source_version_dir=version_dir, target_model_dir=model_dir)
    return target_repo
