"""Choose the inference backend from settings and build the encoder / pair scorer on top of it."""

from __future__ import annotations

from service.inference.base import InferenceBackend
from service.inference.metrics import InstrumentedBackend
from service.inference.models import Encoder, PairScorer
from service.settings import Settings


def make_backend(settings: Settings) -> InferenceBackend:
    """The chosen backend, wrapped so both report the same Prometheus series (``metrics.py``)."""
    if settings.inference == "triton":
        from service.inference.triton import TritonBackend  # optional engine, imported only when chosen

        return InstrumentedBackend(TritonBackend(settings), backend="triton")
    from service.inference.onnx_local import OnnxLocalBackend

    return InstrumentedBackend(OnnxLocalBackend(settings.model_repo, intra_op_threads=settings.intra_op_threads,
                                                 allow_spinning=settings.ort_allow_spinning),
                               backend="embedded")


def make_encoder(backend: InferenceBackend, settings: Settings) -> Encoder:
    return Encoder(backend, settings.model_repo, settings.encoder_model, max_tokens=settings.item_max_tokens,
                   sub_batch=settings.inference_sub_batch, dim=settings.embedding_dim)


def make_pair_scorer(backend: InferenceBackend, settings: Settings) -> PairScorer:
    return PairScorer(backend, settings.model_repo, settings.ranker_model, max_tokens=settings.pair_max_tokens,
                      sub_batch=settings.inference_sub_batch)
