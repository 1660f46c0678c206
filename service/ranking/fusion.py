"""Reciprocal rank fusion (Cormack, Clarke & Büttcher 2009): merge ranked lists by rank, not by score.

Dense cosine similarities and BM25 scores live on unrelated scales, so hybrid retrieval fuses the two
lists by their ranks: score(d) = Σ_lists 1 / (c + rank(d)), ranks from 1, absent = no term. The constant
``c`` damps the weight of the very first ranks; ShopRank chooses it on the validation split
(``bench/hybrid_retrieval.py``, setting ``rrf_k``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def reciprocal_rank_fusion(lists: Sequence[Sequence[Hashable]], *, c: float, k: int) -> list[tuple[Hashable, float]]:
    """The ``k`` best ``(key, fused score)`` over ``lists`` (each best first); ties keep first-seen order."""
    fused: dict[Hashable, float] = {}
    for ranked in lists:
        for rank, key in enumerate(ranked, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (c + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])[:k]
