"""A real ``tritonserver`` for integration tests and benchmarks (the binary inside nvidia-pytriton).

That build carries only the Python backend, so it serves the TEST repository generated from
``model_repo/`` by ``training.export.python_backend`` (same ONNX files, ``model.py`` running
ONNX Runtime). Pitfalls handled here (shared/STACK.md): the backend stub must find the
running interpreter's ``libpython`` (``LD_LIBRARY_PATH`` = its LIBDIR) and the venv's
``python`` first on ``PATH``; the backend directory holds links to pytriton's
``libtriton_python.so``, ``triton_python_backend_utils.py`` and the 3.11 stub. The server
polls the repository (``--model-control-mode=poll``) so new versions load without a restart,
and is stopped with SIGTERM. CUDA/NVML errors in its log are harmless on CPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Self

import tritonclient.grpc as grpcclient

from tests.integration.servers import _stop, _wait, free_port


def _pytriton_dir() -> Path:
    import pytriton

    return Path(pytriton.__file__).parent / "tritonserver"


def _backend_directory(root: Path) -> Path:
    """``root/backends/python`` with the three files the Python backend needs, linked from pytriton."""
    source = _pytriton_dir()
    python_dir = root / "backends" / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    stub = source / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / "triton_python_backend_stub"
    for target in (source / "backends/python/libtriton_python.so",
                   source / "backends/python/triton_python_backend_utils.py", stub):
        link = python_dir / target.name
        if not link.exists():
            link.symlink_to(target)
    return root / "backends"


class TritonServer:
    """One ``tritonserver`` process on free loopback ports; ``stop()``/``start()`` keep the ports.

    Use as a context manager; ``grpc_url`` is what ``SHOPRANK_TRITON_URL`` takes.
    """

    def __init__(self, repo: Path, *, poll_s: int = 1, ready_timeout_s: float = 120.0) -> None:
        self.repo = repo
        self.poll_s = poll_s
        self.ready_timeout_s = ready_timeout_s
        self.workdir = Path(tempfile.mkdtemp(prefix="triton-"))
        self.backends = _backend_directory(self.workdir)
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.log = self.workdir / "tritonserver.log"
        self._proc: subprocess.Popen | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
        env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
        return env

    def start(self) -> TritonServer:
        binary = _pytriton_dir() / "bin" / "tritonserver"
        args = [str(binary), "--model-repository", str(self.repo), "--backend-directory", str(self.backends),
                "--model-control-mode", "poll", "--repository-poll-secs", str(self.poll_s),
                "--http-address", "127.0.0.1", "--http-port", str(self.http_port),
                "--grpc-address", "127.0.0.1", "--grpc-port", str(self.grpc_port),
                "--metrics-port", str(self.metrics_port), "--allow-metrics", "false",
                "--exit-timeout-secs", "5", "--log-verbose", "0"]
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self._env(),
                                          cwd=self.workdir)
        _wait("tritonserver", self._ready, self._proc, self.log, timeout_s=self.ready_timeout_s)
        return self

    def _ready(self) -> bool:
        client = grpcclient.InferenceServerClient(self.grpc_url)
        try:
            if not client.is_server_ready(client_timeout=1.0):
                return False
            index = client.get_model_repository_index(as_json=True).get("models", [])
            return bool(index) and all(m.get("state") == "READY" for m in index if m.get("version"))
        finally:
            client.close()

    @property
    def running(self) -> bool:
        return self._proc is not None

    def stop(self) -> None:
        if self._proc is not None:
            _stop(self._proc, timeout_s=15.0)
            self._proc = None

    def statistics(self, model: str) -> dict:
        """Server-side inference statistics of every served version of ``model`` (as JSON)."""
        client = grpcclient.InferenceServerClient(self.grpc_url)
        try:
            return client.get_inference_statistics(model_name=model, as_json=True)
        finally:
            client.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------------------- pytest fixtures (conftest imports them)

import pytest  # noqa: E402 - fixtures below; the launcher above is usable without pytest (bench/)

from training.export.python_backend import python_backend_repository  # noqa: E402


@pytest.fixture(scope="session")
def triton_repo(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's ``model_repo/`` as a Python-backend test repository (same ONNX files, linked)."""
    return python_backend_repository(source_repo=model_repo, target_repo=tmp_path_factory.mktemp("triton-repo"))


@pytest.fixture(scope="session")
def triton(triton_repo: Path):
    """A real ``tritonserver`` serving ``triton_repo`` on free loopback ports, for the whole session."""
    with TritonServer(triton_repo) as server:
        yield server
