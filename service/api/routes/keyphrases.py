"""POST /v1/keyphrases/recommend: item → advertiser keyphrases, relevance-filtered by the ranker."""

from fastapi import APIRouter

from service import pipelines
from service.api.deps import RuntimeDep
from service.api.schemas import KeyphraseOut, KeyphraseResponse, RelevanceOut, RequestModels
from service.store.base import ItemDocument


def router(models: RequestModels) -> APIRouter:
    api = APIRouter(tags=["keyphrases"])
    KeyphraseRequest = models.KeyphraseRequest

    @api.post("/v1/keyphrases/recommend", response_model=KeyphraseResponse)
    def recommend(body: KeyphraseRequest, runtime: RuntimeDep) -> KeyphraseResponse:
        """A stored item by ``item_id`` (cached per item and model version) or an ad-hoc ``item``."""
        if body.item_id is not None:
            result = pipelines.recommend_for_item_id(runtime, item_id=body.item_id, k=body.k,
                                                     rerank_depth=body.rerank_depth)
        else:
            item = ItemDocument(item_id="", title=body.item.title, category=body.item.category)
            result = pipelines.Recommendations(
                source="computed", keyphrases=pipelines.recommend_keyphrases(runtime, item=item, k=body.k,
                                                                             rerank_depth=body.rerank_depth))
        return KeyphraseResponse(model_version=runtime.model_version, source=result.source, keyphrases=[
            KeyphraseOut(keyphrase=r.keyphrase, score=r.score, relevance=RelevanceOut(
                p_partial_or_better=r.p_partial_or_better, p_exact=r.p_exact, expected=r.expected, label=r.label),
                phase=r.phase)
            for r in result.keyphrases],
            relevance_floor=pipelines.keyphrase_floor(runtime),
            first_phase_relevance_floor=(pipelines.first_phase_keyphrase_floor(runtime)
                                         if runtime.first_phase is not None else None))

    return api
