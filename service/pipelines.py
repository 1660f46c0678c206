"""The three serving pipelines: encoder → index → ranker → value model, free of HTTP.

- ``rank``: score (query, item) pairs with the ranker, order by the unified value model.
- ``retrieve``: query tower → item index → stored documents.
- ``recommend_keyphrases``: item tower → keyphrase index (k × candidates factor) → ranker
  relevance filter on (keyphrase, item) → top k by expected relevance, then ANN score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import ValidationError

from service.errors import InvalidInput, NotFound, UnknownProfile
from service.ranking.engagement_prior import popularity_of, with_priors
from service.ranking.ordinal import OrdinalScores
from service.ranking.value_model import rank_by_value
from service.runtime import Runtime
from service.settings import Settings, WeightProfile
from service.store.base import CachedRecommendations, ItemDocument, KeyphraseRecommendation


@dataclass(frozen=True)
class Relevance:
    p_partial_or_better: float
    p_exact: float
    expected: float
    label: str


@dataclass(frozen=True)
class RankedItem:
    item_id: str
    score: float
    relevance: Relevance
    ctr: float
    cvr: float
    filtered: bool


@dataclass(frozen=True)
class RetrievedItem:
    item: ItemDocument
    score: float


@dataclass(frozen=True)
class Recommendations:
    source: Literal["cache", "computed"]
    keyphrases: list[KeyphraseRecommendation]


def _relevance(scores: OrdinalScores, labels: list[str], row: int) -> Relevance:
    return Relevance(float(scores.p_partial_or_better[row]), float(scores.p_exact[row]),
                     float(scores.expected[row]), labels[row])


def resolve_weights(settings: Settings, *, profile: str | None, overrides: Mapping[str, float] | None) -> WeightProfile:
    """The named profile (``default`` when None) with any caller-given weights laid over it."""
    name = profile or "default"
    if name not in settings.profiles:
        raise UnknownProfile(f"profile {name!r} is not configured; known profiles: {sorted(settings.profiles)}")
    base = settings.profiles[name]
    if not overrides:
        return base
    try:
        return WeightProfile(**(base.model_dump() | dict(overrides)))
    except ValidationError as exc:
        raise InvalidInput(f"weights: {exc.errors()[0]['msg']}") from exc


def _check_task(runtime: Runtime, task: str) -> None:
    if task not in runtime.scorer.tasks():
        raise InvalidInput(f"task {task!r} is not served by the ranker; known tasks: {runtime.scorer.tasks()}")


def rank(runtime: Runtime, *, query: str, items: Sequence[ItemDocument], weights: WeightProfile,
         min_relevance: float | None = None, task: str = "query_item",
         features: Sequence[Mapping[str, float]] | None = None) -> list[RankedItem]:
    """Items best first by value score; items under the relevance floor come last, marked filtered.

    ``features[i]`` are candidate i's caller-given features; ``popularity`` shifts its CTR/CVR when the
    served ranker's card has an engagement fit (``service/ranking/engagement_prior.py``)."""
    _check_task(runtime, task)
    heads = runtime.scorer.score([query] * len(items), [item.text for item in items], task=task)
    rel, labels = heads.relevance, heads.relevance.labels
    popularity = popularity_of(features if features is not None else [{}] * len(items))
    ctr, cvr = with_priors(runtime.scorer.card, heads.ctr, heads.cvr, popularity)
    result = rank_by_value(expected_relevance=rel.expected, p_partial_or_better=rel.p_partial_or_better,
                           ctr=ctr, cvr=cvr, weights=weights, min_relevance=min_relevance)
    return [RankedItem(item_id=items[row].item_id, score=float(result.score[row]), relevance=_relevance(rel, labels, row),
                       ctr=float(ctr[row]), cvr=float(cvr[row]), filtered=bool(result.filtered[row]))
            for row in result.order]


def retrieve(runtime: Runtime, *, query: str, k: int) -> list[RetrievedItem]:
    """Nearest items to the query in the item index, with their stored documents."""
    scores, ids = runtime.items.search(runtime.encoder.encode([query], kind="query"), k)
    found = ids[0] >= 0
    item_ids = runtime.store.item_ids_for_vectors(ids[0][found].tolist())
    hits = [(item_id, float(score)) for item_id, score in zip(item_ids, scores[0][found]) if item_id is not None]
    docs = runtime.store.get_items([item_id for item_id, _ in hits])
    return [RetrievedItem(item=doc, score=score) for doc, (_, score) in zip(docs, hits) if doc is not None]


def keyphrase_floor(runtime: Runtime) -> float:
    """The relevance filter's P(y ≥ partial) floor: the setting if given, else the served ranker's calibrated one."""
    configured = runtime.settings.keyphrase_min_relevance
    return configured if configured is not None else runtime.scorer.relevance_floor()


def recommend_keyphrases(runtime: Runtime, *, item: ItemDocument, k: int) -> list[KeyphraseRecommendation]:
    """Keyphrases for an item: ANN candidates kept when the ranker's P(y ≥ partial) clears the floor."""
    settings = runtime.settings
    scores, ids = runtime.keyphrases.search(runtime.encoder.encode([item.text], kind="item"),
                                            k * settings.keyphrase_candidates_factor)
    candidates = [(runtime.keyphrase_texts[i], float(s)) for i, s in zip(ids[0].tolist(), scores[0])
                  if i in runtime.keyphrase_texts]
    if not candidates:
        return []
    phrases, ann = [c[0] for c in candidates], np.array([c[1] for c in candidates])
    rel = runtime.scorer.score(phrases, [item.text] * len(phrases), task="query_item").relevance
    labels = rel.labels
    keep = np.flatnonzero(rel.p_partial_or_better >= keyphrase_floor(runtime))
    best = keep[np.lexsort((-ann[keep], -rel.expected[keep]))][:k]  # expected relevance, then ANN score
    return [KeyphraseRecommendation(keyphrase=phrases[r], score=ann[r], p_partial_or_better=rel.p_partial_or_better[r],
                                    p_exact=rel.p_exact[r], expected=rel.expected[r], label=labels[r]) for r in best]


def recommend_for_item_id(runtime: Runtime, *, item_id: str, k: int) -> Recommendations:
    """A stored item's keyphrases: from the cache when it matches the item and model versions."""
    doc = runtime.store.get_items([item_id])[0]
    if doc is None:
        raise NotFound(f"item {item_id!r} is not in the catalogue")
    cache_k, model_version = runtime.settings.keyphrase_cache_k, runtime.model_version
    cached = runtime.store.get_recommendations(item_id)
    if (cached is not None and k <= cache_k and cached.model_version == model_version
            and cached.item_version == doc.version):
        return Recommendations(source="cache", keyphrases=cached.keyphrases[:k])
    recs = recommend_keyphrases(runtime, item=doc, k=max(k, cache_k))
    runtime.store.put_recommendations([CachedRecommendations(item_id=item_id, item_version=doc.version,
                                                             model_version=model_version, keyphrases=recs[:cache_k])])
    return Recommendations(source="computed", keyphrases=recs[:k])
