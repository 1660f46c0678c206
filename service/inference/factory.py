"""Choose the inference backend from settings and build the encoder / pair scorer on top of it."""

from __future__ import annotations

import logging

from service.errors import NotFound
from service.inference.base import InferenceBackend
from service.inference.metrics import InstrumentedBackend
from service.inference.models import Encoder, FirstPhaseScorer, PairScorer, TwoTowerEncoder
from service.inference.row_cache import RowCache, Tier, pair_score_cache
from service.settings import Settings

log = logging.getLogger(__name__)


def make_backend(settings: Settings) -> InferenceBackend:
    """The chosen backend, wrapped so both report the same Prometheus series (``metrics.py``)."""
    if settings.inference == "triton":
        from service.inference.triton import TritonBackend  # optional engine, imported only when chosen

        return InstrumentedBackend(TritonBackend(settings), backend="triton")
    from service.inference.onnx_local import OnnxLocalBackend

    return InstrumentedBackend(OnnxLocalBackend(settings.model_repo, intra_op_threads=settings.intra_op_threads,
                                                 allow_spinning=settings.ort_allow_spinning),
                               backend="embedded")


def make_encoder(backend: InferenceBackend, settings: Settings, *, cache: RowCache | None = None,
                 ) -> Encoder | TwoTowerEncoder:
    """The served encoder; with an item tower for it (``settings.item_encoder_model``) items go through the tower.

    ``cache``: the serving API's embedding LRU (``service.runtime.build_runtime`` makes it), shared by both towers (their
    versions key it apart); batch embedders (indexer, catalogue builds) see each text once and pass none.

    The tower is used only when its card says it was distilled from exactly the encoder version served:
    a tower of another encoder would put items in a space the queries are not in."""
    encoder = Encoder(backend, settings.model_repo, settings.encoder_model, max_tokens=settings.item_max_tokens,
                      sub_batch=settings.inference_sub_batch, dim=settings.embedding_dim,
                      query_max_tokens=settings.query_max_tokens, cache=cache)
    name = settings.item_encoder_model
    if not name:
        return encoder
    try:
        tower = Encoder(backend, settings.model_repo, name, max_tokens=settings.item_max_tokens,
                        sub_batch=settings.inference_sub_batch, dim=settings.embedding_dim, cache=cache)
        teacher = tower.card.get("teacher")
    except NotFound as exc:
        log.info("item tower: no %r model (%s); items go through %s", name, exc.message, encoder.model_version)
        return encoder
    if teacher != encoder.model_version:
        log.warning("item tower: %s was distilled from %r, but %s is served; items go through the encoder",
                    tower.model_version, teacher, encoder.model_version)
        return encoder
    return TwoTowerEncoder(encoder, tower)


def make_pair_scorer(backend: InferenceBackend, settings: Settings, *, shared: Tier | None = None) -> PairScorer:
    """The ranker with its in-process LRU and, where the deployment shares pair scores, their shared tier."""
    return PairScorer(backend, settings.model_repo, settings.ranker_model, max_tokens=settings.pair_max_tokens,
                      sub_batch=settings.inference_sub_batch, cache=pair_score_cache(settings.pair_cache_size),
                      shared=shared)


def make_first_phase(backend: InferenceBackend, settings: Settings, encoder: Encoder | TwoTowerEncoder,
                     ) -> tuple[FirstPhaseScorer | None, str]:
    """The first-phase scorer, or None and why phasing is off (said once in the log and on ``/readyz``).

    On when the backend serves ``settings.first_phase_model`` (embedded: a complete version in
    ``model_repo/``; Triton: a ready version on the server) and that version's card says it was trained
    on the served encoder's vectors; a first phase over another encoder's vectors would score noise."""
    name = settings.first_phase_model
    if not name:
        status = "off: SHOPRANK_FIRST_PHASE_MODEL is empty"
        log.info("phased ranking %s", status)
        return None, status
    try:
        scorer = FirstPhaseScorer(backend, settings.model_repo, name)
        version = scorer.model_version
    except NotFound as exc:
        status = f"off: no {name!r} model ({exc.message})"
        log.warning("phased ranking %s; every candidate goes to the cross-encoder", status)
        return None, status
    card = scorer.card
    if card.get("kind") != "first_phase" or scorer.encoder != encoder.vector_space:
        status = (f"off: {version} is kind {card.get('kind')!r} trained on {scorer.encoder!r}, "
                  f"but {encoder.model_version} is served")
        log.warning("phased ranking %s; every candidate goes to the cross-encoder", status)
        return None, status
    status = f"on: {version} over {encoder.model_version}, rerank_depth {settings.rerank_depth} by default"
    log.info("phased ranking %s", status)
    return scorer, status
