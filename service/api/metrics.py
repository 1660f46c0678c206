"""Prometheus metrics of the API: requests and latency per route and status, index sizes, models.

Each app has its own ``CollectorRegistry`` (several apps in one test process do not collide).
Requests are labelled by route *template* (``/v1/items/{item_id}``), never by raw path, so
label cardinality stays bounded.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS_S = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("shoprank_http_requests_total", "HTTP requests answered",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram("shoprank_http_request_duration_seconds", "Time to answer an HTTP request",
                                 ["method", "route", "status"], buckets=LATENCY_BUCKETS_S, registry=registry)


class RequestMetricsMiddleware:
    """Pure ASGI middleware (no body buffering) timing each request to its response's end."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            labels = (scope["method"], route, str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)


class RuntimeCollector:
    """Reads the live runtime at scrape time: readiness, index sizes, served model versions."""

    def __init__(self, holder) -> None:
        self._holder = holder

    def collect(self):
        runtime = self._holder.runtime
        yield GaugeMetricFamily("shoprank_ready", "1 when models are loaded and indexes ready",
                                value=1.0 if runtime is not None and runtime.ready else 0.0)
        if runtime is None:
            return
        sizes = GaugeMetricFamily("shoprank_index_vectors", "Vectors in each index", labels=["index"])
        sizes.add_metric(["items"], len(runtime.items))
        sizes.add_metric(["keyphrases"], len(runtime.keyphrases))
        yield sizes
        yield GaugeMetricFamily("shoprank_store_items", "Live items in the item store", value=runtime.store.count())
        info = InfoMetricFamily("shoprank_model", "Models being served")
        info.add_metric([], {"version": runtime.model_version, "encoder": runtime.encoder.model_version,
                             "ranker": runtime.scorer.model_version,
                             "first_phase": runtime.first_phase.model_version if runtime.first_phase else "off"})
        yield info

    def describe(self):
        return []  # collected lazily: the runtime may not exist when the collector is registered
