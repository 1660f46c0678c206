"""Choose the index layout from settings: a plain ``FaissIndex`` at the served cut, or the Matryoshka funnel."""

from __future__ import annotations

from pathlib import Path

from service.index.base import VectorIndex
from service.index.faiss_index import FaissIndex
from service.index.funnel import MatryoshkaFunnelIndex
from service.index.snapshots import matches, read_sidecar
from service.settings import Settings


def index_layout(settings: Settings) -> str:
    """What a snapshot's layout must be to be restored under these settings (kept in its sidecar meta)."""
    if settings.funnel_dim is None:
        return f"{settings.index_kind}/{settings.embedding_dim}"
    return f"{settings.index_kind}/{settings.funnel_dim}->{settings.embedding_dim}/{settings.index_full_precision}"


def make_index(settings: Settings) -> VectorIndex:
    """An empty index of the served dimension (``embedding_dim``), laid out as the settings say."""
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
    return matches(read_sidecar(path), kind=settings.index_kind, dim=settings.embedding_dim,
                   meta={**meta, "layout": index_layout(settings)})


def restore_index(settings: Settings, path: Path) -> VectorIndex:
    """Load a snapshot written by ``snapshot(path, meta={..., "layout": index_layout(settings)})``."""
    params = {"nlist": settings.index_nlist, "nprobe": settings.index_nprobe, "ef_search": settings.index_ef_search,
              "search_threads": settings.index_search_threads}
    if settings.funnel_dim is None:
        return FaissIndex.restore(path, **params)
    return MatryoshkaFunnelIndex.restore(path, shortlist_factor=settings.index_shortlist_factor, **params)
