"""POST /v1/rank: order candidates for a query by the unified value model."""

from fastapi import APIRouter

from service import pipelines
from service.api.deps import RuntimeDep
from service.api.schemas import (
    EngagementOut,
    ErrorResponse,
    RankedItemOut,
    RankResponse,
    RelevanceOut,
    RequestModels,
)
from service.store.base import ItemDocument


def router(models: RequestModels) -> APIRouter:
    api = APIRouter(tags=["ranking"])
    RankRequest = models.RankRequest

    @api.post("/v1/rank", response_model=RankResponse, responses={413: {
        "model": ErrorResponse, "description": "more candidates than SHOPRANK_MAX_CANDIDATES (`payload_too_large`)"}})
    def rank(body: RankRequest, runtime: RuntimeDep) -> RankResponse:
        """Score the (query, item) pairs — the first phase all, the cross-encoder the best ``rerank_depth`` — and
        order them by the value model: best first, re-scored (phase 2) before first-phase-only, filtered last."""
        weights = pipelines.resolve_weights(
            runtime.settings, profile=body.profile,
            overrides=body.weights.model_dump(exclude_none=True) if body.weights else None)
        docs = [ItemDocument(item_id=item.id, title=item.title, category=item.category) for item in body.items]
        ranked = pipelines.rank(runtime, query=body.query, items=docs, weights=weights,
                                min_relevance=body.min_relevance, task=body.task,
                                features=[item.features for item in body.items], rerank_depth=body.rerank_depth,
                                defer_uncached=body.defer_uncached)
        return RankResponse(model_version=runtime.model_version, items=[
            RankedItemOut(id=r.item_id, score=r.score, relevance=RelevanceOut(**vars(r.relevance)),
                          engagement=EngagementOut(ctr=r.ctr, cvr=r.cvr), filtered=r.filtered, phase=r.phase)
            for r in ranked])

    return api
