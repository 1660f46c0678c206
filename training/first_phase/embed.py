"""Both sides of each pair embedded by the SERVED encoder, exactly as the service embeds them.

The service embeds a query with ``kind="query"`` (``pipelines.retrieve``) and an item's text with
``kind="item"`` (the indexer, keyphrases), each with the card's prefix for that kind, L2-normalised at
the full width (384-d: the index's full-vector store keeps it). So per task: query_item = (query, item),
item_item = (item, item), query_query = (query, query). Each distinct text is encoded once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from service.inference.models import Encoder, TwoTowerEncoder

SIDE_KINDS = {"query_item": ("query", "item"), "item_item": ("item", "item"), "query_query": ("query", "query")}


def full_width_encoder(settings) -> Encoder | TwoTowerEncoder:
    """The served encoder at the card's full width (no Matryoshka cut), the service's token limit and batching;
    with the served item tower for ``kind="item"`` when there is one (``service.inference.factory.make_encoder``),
    since those are the item vectors the service feeds the first phase."""
    from service.inference.factory import make_backend, make_encoder

    def full_width(encoder: Encoder) -> Encoder:
        return Encoder(encoder.backend, encoder.repo, encoder.model, max_tokens=encoder.max_tokens,
                       sub_batch=encoder.sub_batch, dim=int(encoder.card.get("dim", 384)))

    served = make_encoder(make_backend(settings), settings)
    if isinstance(served, TwoTowerEncoder):
        return TwoTowerEncoder(full_width(served.query), full_width(served.item))
    return full_width(served)


def encode_texts(encoder: Encoder, texts: list[str], *, kind: str, batch: int = 512) -> dict[str, np.ndarray]:
    from service.runtime import encode_all

    distinct = sorted(set(texts))
    vectors = encode_all(encoder, distinct, kind=kind, batch=batch, label=f"first-phase {kind}s")
    return dict(zip(distinct, vectors.astype(np.float32)))


def pair_vectors(encoder: Encoder, frame: pd.DataFrame, *, cache: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """[n, dim] left and right vectors of ``frame``'s pairs (``cache``: kind → text → vector, filled in place)."""
    cache = cache if cache is not None else {}
    wanted: dict[str, set[str]] = {"query": set(), "item": set()}
    for task, (left_kind, right_kind) in SIDE_KINDS.items():
        rows = frame[frame["task"] == task]
        wanted[left_kind].update(rows["left"])
        wanted[right_kind].update(rows["right"])
    for kind, texts in wanted.items():
        known = cache.setdefault(kind, {})
        missing = sorted(t for t in texts if t not in known)
        if missing:
            known.update(encode_texts(encoder, missing, kind=kind))
    left_kind = frame["task"].map(lambda t: SIDE_KINDS[t][0]).to_numpy()
    right_kind = frame["task"].map(lambda t: SIDE_KINDS[t][1]).to_numpy()
    left = np.stack([cache[k][t] for k, t in zip(left_kind, frame["left"])]) if len(frame) else np.zeros((0, 384))
    right = np.stack([cache[k][t] for k, t in zip(right_kind, frame["right"])]) if len(frame) else np.zeros((0, 384))
    return left.astype(np.float32), right.astype(np.float32)


def int8_roundtrip(vectors: np.ndarray) -> np.ndarray:
    """What the index's int8 full-vector store gives back (symmetric per-vector, ``SlotVectorStore``)."""
    from service.index.vector_store import SlotVectorStore

    store = SlotVectorStore(vectors.shape[1], precision="int8", capacity=max(len(vectors), 1))
    ids = np.arange(len(vectors), dtype=np.int64)
    store.upsert(ids, vectors.astype(np.float32))
    return store.lookup(ids)
