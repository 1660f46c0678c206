"""POST /v1/retrieve: query → items, by the dense item index, BM25 over titles, or both fused."""

from fastapi import APIRouter

from service import pipelines
from service.api.deps import RuntimeDep
from service.api.schemas import RequestModels, RetrievedItemOut, RetrieveResponse


def router(models: RequestModels) -> APIRouter:
    api = APIRouter(tags=["retrieval"])
    RetrieveRequest = models.RetrieveRequest

    @api.post("/v1/retrieve", response_model=RetrieveResponse)
    def retrieve(body: RetrieveRequest, runtime: RuntimeDep) -> RetrieveResponse:
        """The k best items by ``mode``: dense (query tower → item index, cosine), lexical (BM25 over titles) or
        hybrid (both lists fused by reciprocal rank fusion); best first."""
        mode = body.mode or runtime.settings.retrieval_mode
        hits = pipelines.retrieve(runtime, query=body.query, k=body.k, mode=mode)
        return RetrieveResponse(model_version=runtime.model_version, mode=mode, items=[
            RetrievedItemOut(id=h.item.item_id, title=h.item.title, category=h.item.category, score=h.score)
            for h in hits])

    return api
