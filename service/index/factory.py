"""Choose the index from settings: FAISS in process memory (a plain ``FaissIndex`` at the served cut, or the
Matryoshka funnel) or, with ``index_backend="milvus"``, a Milvus collection (``milvus_index.MilvusIndex``, the
same funnel expressed in Milvus; pymilvus is imported only then)."""

from __future__ import annotations

from pathlib import Path

from service.index.base import VectorIndex
from service.index.faiss_index import FaissIndex
from service.index.funnel import MatryoshkaFunnelIndex
from service.index.snapshots import matches, read_sidecar
from service.settings import Settings


def index_layout(settings: Settings) -> str:
    """What a snapshot's layout must be to be restored under these settings (kept in its sidecar meta)."""
    if settings.index_backend == "milvus":
        return f"milvus:{settings.index_kind}/{settings.funnel_dim or settings.embedding_dim}->{settings.embedding_dim}"
    if settings.funnel_dim is None:
        return f"{settings.index_kind}/{settings.embedding_dim}"
    return f"{settings.index_kind}/{settings.funnel_dim}->{settings.embedding_dim}/{settings.index_full_precision}"


def make_index(settings: Settings, *, name: str = "items") -> VectorIndex:
    """An empty index of the served dimension (``embedding_dim``), laid out as the settings say. ``name`` is the
    index's role (items, keyphrases): Milvus keeps each role in collections of its own."""
    if settings.index_backend == "milvus":
        from service.index.milvus_index import MilvusIndex

        return MilvusIndex.new_generation(settings.embedding_dim, uri=settings.milvus_target,
                                          prefix=f"{settings.milvus_collection}_{name}", **_milvus_params(settings))
    params = {"kind": settings.index_kind, "nlist": settings.index_nlist, "nprobe": settings.index_nprobe,
              "ef_search": settings.index_ef_search, "hnsw_m": settings.index_hnsw_m,
              "search_threads": settings.index_search_threads}
    if settings.funnel_dim is None:
        return FaissIndex(settings.embedding_dim, **params)
    return MatryoshkaFunnelIndex(settings.embedding_dim, shortlist_dim=settings.funnel_dim,
                                 shortlist_factor=settings.index_shortlist_factor,
                                 full_precision=settings.index_full_precision, **params)


def restorable(settings: Settings, path: Path, meta: dict) -> bool:
    """True when the snapshot at ``path`` has this layout and every expected ``meta`` value."""
    kind = "milvus" if settings.index_backend == "milvus" else settings.index_kind
    return matches(read_sidecar(path), kind=kind, dim=settings.embedding_dim,
                   meta={**meta, "layout": index_layout(settings)})


def restore_index(settings: Settings, path: Path) -> VectorIndex:
    """Load a snapshot written by ``snapshot(path, meta={..., "layout": index_layout(settings)})``."""
    if settings.index_backend == "milvus":
        from service.index.milvus_index import MilvusIndex

        params = _milvus_params(settings)
        params.pop("shortlist_dim")  # the collection's own, from the sidecar
        return MilvusIndex.restore(path, uri=settings.milvus_target, **params)
    params = {"nlist": settings.index_nlist, "nprobe": settings.index_nprobe, "ef_search": settings.index_ef_search,
              "search_threads": settings.index_search_threads}
    if settings.funnel_dim is None:
        return FaissIndex.restore(path, **params)
    return MatryoshkaFunnelIndex.restore(path, shortlist_factor=settings.index_shortlist_factor, **params)


def _milvus_params(settings: Settings) -> dict:
    return {"shortlist_dim": settings.funnel_dim, "shortlist_factor": settings.index_shortlist_factor,
            "index_kind": settings.index_kind, "nlist": settings.index_nlist, "nprobe": settings.index_nprobe,
            "ef_search": settings.index_ef_search, "hnsw_m": settings.index_hnsw_m,
            "consistency": settings.milvus_consistency, "flush_rows": settings.milvus_lite_flush_rows,
            "token": settings.milvus_token}
