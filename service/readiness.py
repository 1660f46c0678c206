"""What ``/readyz`` checks once the runtime is built: every dependency this process is configured to use
answers now. A replica whose Redis, broker or Triton is gone cannot serve, so it must leave the load
balancer's pool (and come back without a restart when the dependency does).

Each check is bounded by ``readiness_timeout_s`` and its outcome reused for ``readiness_cache_s``, since
balancers probe every second or so and a probe must not wait for a stuck dependency's full timeout.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable

from service.settings import Settings

log = logging.getLogger(__name__)

Check = Callable[[], None]  # returns when the dependency answers, raises with the reason otherwise


def kafka_answers(bootstrap: str, *, timeout_s: float) -> None:
    """One Kafka ApiVersions (v0) round trip with any bootstrap broker, within ``timeout_s``.

    Written by hand: kafka-python has no bounded-time liveness call (its clients retry for
    ``request_timeout_ms``), and a TCP connect alone succeeds against a frozen broker."""
    request = struct.pack(">hhih", 18, 0, 7, len(b"shoprank-readyz")) + b"shoprank-readyz"
    errors = []
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s) as conn:
                conn.settimeout(timeout_s)
                conn.sendall(struct.pack(">i", len(request)) + request)
                header = conn.recv(8)
                if len(header) == 8 and struct.unpack(">ii", header)[1] == 7:
                    return
                errors.append(f"{address}: no ApiVersions answer")
        except OSError as exc:
            errors.append(f"{address}: {exc or type(exc).__name__}")
    raise ConnectionError("; ".join(errors))


def dependency_checks(settings: Settings, runtime_now: Callable) -> dict[str, Check]:
    """name → check, for the dependencies ``settings`` configures (``runtime_now()``: the current runtime)."""
    timeout_s = settings.readiness_timeout_s
    checks: dict[str, Check] = {}
    if settings.redis_url:
        def redis_check() -> None:
            if not runtime_now().store.ping():
                raise ConnectionError("PING did not answer PONG")
        checks["redis"] = redis_check
    if settings.kafka_bootstrap:
        checks["broker"] = lambda: kafka_answers(settings.kafka_bootstrap, timeout_s=timeout_s)
    if settings.inference == "triton":
        checks["triton"] = lambda: runtime_now().backend.ping(timeout_s=timeout_s)
    return checks


class Readiness:
    """The dependencies that did not answer at the last check (``{}`` = all answered), refreshed every
    ``cache_s`` at most; concurrent probes share one refresh."""

    def __init__(self, checks: dict[str, Check], *, cache_s: float) -> None:
        self._checks = checks
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._problems: dict[str, str] = {}

    def problems(self) -> dict[str, str]:
        with self._lock:
            if time.monotonic() - self._checked_at >= self._cache_s:
                problems = {}
                for name, check in self._checks.items():
                    try:
                        check()
                    except Exception as exc:  # noqa: BLE001 - any failure is the reason this replica is not ready
                        problems[name] = f"{type(exc).__name__}: {exc}"
                if problems.keys() != self._problems.keys():
                    log.warning("readiness: %s", problems or "every dependency answers again")
                self._problems, self._checked_at = problems, time.monotonic()
            return dict(self._problems)
