"""POST /v1/retrieve: query → nearest items in the item index."""

from fastapi import APIRouter

from service import pipelines
from service.api.deps import RuntimeDep
from service.api.schemas import RequestModels, RetrievedItemOut, RetrieveResponse


def router(models: RequestModels) -> APIRouter:
    api = APIRouter(tags=["retrieval"])
    RetrieveRequest = models.RetrieveRequest

    @api.post("/v1/retrieve", response_model=RetrieveResponse)
    def retrieve(body: RetrieveRequest, runtime: RuntimeDep) -> RetrieveResponse:
        """Encode the query with the query tower and search the item index (cosine, best first)."""
        hits = pipelines.retrieve(runtime, query=body.query, k=body.k)
        return RetrieveResponse(model_version=runtime.model_version, items=[
            RetrievedItemOut(id=h.item.item_id, title=h.item.title, category=h.item.category, score=h.score)
            for h in hits])

    return api
