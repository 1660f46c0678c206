"""Liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from service.api.deps import HolderDep
from service.api.schemas import ReadyResponse, StatusResponse
from service.errors import DependencyUnavailable


def router() -> APIRouter:
    api = APIRouter(tags=["operations"])

    @api.get("/healthz", response_model=StatusResponse)
    def healthz() -> StatusResponse:
        """The process is alive (answers while models are still loading)."""
        return StatusResponse(status="ok")

    @api.get("/readyz", response_model=ReadyResponse, responses={503: {
        "description": "still loading (`not_ready`), or a configured dependency does not answer "
                       "(`dependency_unavailable`, naming Redis, the broker or Triton)"}})
    def readyz(holder: HolderDep) -> ReadyResponse:
        """Models loaded, indexes ready, warm-up done, and every configured dependency (Redis, the broker,
        Triton) answers now; else 503 with Retry-After. ``phasing`` says whether phased ranking is on (and
        why not when it is off)."""
        runtime = holder.get()
        problems = holder.readiness.problems()
        if problems:
            raise DependencyUnavailable("not ready: " + "; ".join(f"{name} does not answer ({why})"
                                                                  for name, why in sorted(problems.items())))
        return ReadyResponse(status="ready", model_version=runtime.model_version, phasing=runtime.phasing)

    @api.get("/metrics", response_class=Response)
    def metrics(request: Request) -> Response:
        """Prometheus text format."""
        return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    return api
