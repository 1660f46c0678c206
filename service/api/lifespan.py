"""Start-up and shut-down: build the runtime in the background so ``/healthz`` answers at once.

``/readyz`` and every model endpoint answer 503 ``not_ready`` (with ``Retry-After``) until the
models are loaded, the indexes restored or built, one rank and one encode have run (warm-up),
and replication has started.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from service import pipelines
from service.errors import DependencyUnavailable, NotReady
from service.gc_pauses import freeze_startup_heap
from service.model_swap import start_model_swap
from service.readiness import Readiness, dependency_checks
from service.replication import ReplicationHandle, start_replication
from service.runtime import Runtime, build_runtime
from service.settings import Settings
from service.store.base import ItemDocument

log = logging.getLogger(__name__)


def warm_up(runtime: Runtime) -> None:
    """One rank and one encode, so the first caller does not pay for lazy initialisation."""
    weights = pipelines.resolve_weights(runtime.settings, profile=None, overrides=None)
    pipelines.rank(runtime, query="warm up", items=[ItemDocument(item_id="warm-up", title="warm up")], weights=weights)
    if runtime.first_phase is not None:  # and the first phase alone (phased ranking)
        pipelines.rank(runtime, query="warm up", items=[ItemDocument(item_id="warm-up", title="warm up")],
                       weights=weights, rerank_depth=0)
    runtime.encoder.encode(["warm up"], kind="query")


class RuntimeHolder:
    """The runtime once ready; the start-up error if building it failed."""

    def __init__(self, build: Callable[[Settings], Runtime] = build_runtime) -> None:
        self._build = build
        self.runtime: Runtime | None = None
        self.error: str | None = None
        self._replication: ReplicationHandle | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stop = threading.Event()
        self.readiness = Readiness({}, cache_s=0)

    def start(self, settings: Settings) -> None:
        self.readiness = Readiness(dependency_checks(settings, self.get), cache_s=settings.readiness_cache_s)
        self._thread = threading.Thread(target=self._run, args=(settings,), name="runtime-build", daemon=True)
        self._thread.start()

    def _run(self, settings: Settings) -> None:
        delay_s = 1.0
        while True:
            try:
                runtime = self._build(settings)
                warm_up(runtime)
                replication = start_replication(runtime)
                break
            except DependencyUnavailable as exc:  # Triton/Redis/Kafka not up yet: keep trying, stay not-ready
                log.warning("start-up waits for a dependency (retry in %.0fs): %s", delay_s, exc)
                if self._closed or self._stop.wait(delay_s):
                    return
                delay_s = min(delay_s * 2, 30.0)
            except Exception as exc:  # reported through /readyz and the log
                log.exception("start-up failed")
                self.error = f"{type(exc).__name__}: {exc}"
                return
        if self._closed:  # shut down while building
            replication.close()
            runtime.close()
            return
        if settings.gc_freeze_after_start:
            freeze_startup_heap()
        runtime.ready = True
        self.runtime, self._replication = runtime, replication
        log.info("ready: %s", runtime.model_version)

    def get(self) -> Runtime:
        if self.runtime is not None:
            return self.runtime
        if self.error is not None:
            raise DependencyUnavailable(f"start-up failed: {self.error}", retry_after_s=30)
        raise NotReady("still loading models and indexes", retry_after_s=5)

    def close(self, *, timeout_s: float = 10.0) -> None:
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._replication is not None:
            self._replication.close()
        if self.runtime is not None:
            self.runtime.ready = False
            self.runtime.close()


@asynccontextmanager
async def lifespan(app: FastAPI):
    holder: RuntimeHolder = app.state.runtime_holder
    holder.start(app.state.settings)
    watcher = start_model_swap(holder, app.state.settings)  # hot model swap (service/model_swap.py)
    try:
        yield
    finally:
        if watcher is not None:
            await run_in_threadpool(watcher.stop)
        await run_in_threadpool(holder.close)
