"""The three serving pipelines: encoder → index → ranker → value model, free of HTTP.

- ``rank``: score (query, item) pairs — with phased ranking on, the first phase scores every candidate
  and the ranker re-scores the best ``rerank_depth`` (``service/ranking/phases.py``) — and order them
  by the unified value model.
- ``retrieve``: query tower → item index (dense), BM25 over titles (lexical) or both fused by
  reciprocal rank fusion (hybrid) → stored documents.
- ``recommend_keyphrases``: item tower → keyphrase index (k × candidates factor) → ranker
  relevance filter on (keyphrase, item) → top k by expected relevance, then ANN score; with phasing
  on, the same two phases, each phase's candidates filtered by that phase's calibrated floor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import ValidationError

from service.catalogue import stable_id, text_hash
from service.errors import InvalidInput, NotFound, UnknownProfile
from service.ranking import phases
from service.ranking.engagement_prior import popularity_of, with_priors
from service.ranking.fusion import reciprocal_rank_fusion
from service.ranking.ordinal import OrdinalScores
from service.ranking.value_model import rank_by_value, value_scores
from service.runtime import Runtime
from service.settings import Settings, WeightProfile
from service.store.base import CachedRecommendations, ItemDocument, KeyphraseRecommendation
from service.store.pair_scores import HeadQuery


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
    phase: int = phases.SECOND  # 1 = first phase only, 2 = re-scored by the ranker (cross-encoder)


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


def item_vectors(runtime: Runtime, items: Sequence[ItemDocument], *, kind: str = "item") -> np.ndarray:
    """The first phase's item-side vectors: from the item index when it holds a vector for the id made from
    exactly the candidate's text (``title | category``), else embedded, all such candidates in one batch.
    ``kind="query"`` (query_query candidates) always embeds.

    "Made from exactly this text" is the index's own record (``runtime.searchable``, which follows the
    index, not the store: with Kafka the store can be ahead of this replica's index); a runtime without
    one compares with the stored document instead."""
    vectors = np.zeros((len(items), runtime.encoder.dim), dtype=np.float32)
    have = np.zeros(len(items), dtype=bool)
    if kind == "item" and items:
        searchable = getattr(runtime, "searchable", None)
        if searchable is not None:
            same = np.array([row for row, item in enumerate(items)
                             if searchable.holds_text(stable_id(item.item_id), item.text)], dtype=np.int64)
        else:
            stored = runtime.store.get_items([item.item_id for item in items])
            same = np.array([row for row, (item, doc) in enumerate(zip(items, stored))
                             if doc is not None and doc.text == item.text], dtype=np.int64)
        if len(same):
            found, got = runtime.items.vectors(np.array([stable_id(items[r].item_id) for r in same], dtype=np.int64))
            vectors[same[found]], have[same[found]] = got[found], True
    missing = np.flatnonzero(~have)
    if len(missing):
        vectors[missing] = runtime.encoder.encode([items[r].text for r in missing], kind=kind)
    return vectors


def _phase_heads(scores, card: Mapping, popularity: np.ndarray) -> phases.Heads:
    ctr, cvr = with_priors(card, scores.ctr, scores.cvr, popularity)
    rel = scores.relevance
    return phases.Heads(rel.p_partial_or_better, rel.p_exact, rel.labels, np.asarray(ctr), np.asarray(cvr))


def phasing_applies(runtime: Runtime, *, depth: int, candidates: int, task: str) -> bool:
    """Whether a request goes through two phases: a first phase is served for the task and the depth is
    below the number of candidates (else every candidate is re-scored anyway: today's single phase)."""
    first = runtime.first_phase
    return first is not None and depth < candidates and task in first.tasks()


def rank(runtime: Runtime, *, query: str, items: Sequence[ItemDocument], weights: WeightProfile,
         min_relevance: float | None = None, task: str = "query_item",
         features: Sequence[Mapping[str, float]] | None = None, rerank_depth: int | None = None,
         defer_uncached: bool = True) -> list[RankedItem]:
    """Items best first by value score; items under the relevance floor come last, marked filtered.

    ``features[i]`` are candidate i's caller-given features; ``popularity`` shifts its CTR/CVR when the
    served ranker's card has an engagement fit (``service/ranking/engagement_prior.py``). ``rerank_depth``
    (default ``settings.rerank_depth``): how many of the first phase's best the ranker re-scores.
    ``defer_uncached``: a query re-scored before may leave its few new pairs to the pair filler
    (``settings.rerank_defer_max``); False re-scores every pair before answering (an evaluation's choice)."""
    _check_task(runtime, task)
    depth = runtime.settings.rerank_depth if rerank_depth is None else rerank_depth
    if phasing_applies(runtime, depth=depth, candidates=len(items), task=task):
        return _rank_phased(runtime, query=query, items=items, weights=weights, min_relevance=min_relevance,
                            task=task, features=features, depth=depth, defer_uncached=defer_uncached)
    heads = runtime.scorer.score([query] * len(items), [item.text for item in items], task=task)
    rel, labels = heads.relevance, heads.relevance.labels
    popularity = popularity_of(features if features is not None else [{}] * len(items))
    ctr, cvr = with_priors(runtime.scorer.card, heads.ctr, heads.cvr, popularity)
    result = rank_by_value(expected_relevance=rel.expected, p_partial_or_better=rel.p_partial_or_better,
                           ctr=ctr, cvr=cvr, weights=weights, min_relevance=min_relevance)
    return [RankedItem(item_id=items[row].item_id, score=float(result.score[row]), relevance=_relevance(rel, labels, row),
                       ctr=float(ctr[row]), cvr=float(cvr[row]), filtered=bool(result.filtered[row]))
            for row in result.order]


def _rank_phased(runtime: Runtime, *, query: str, items: Sequence[ItemDocument], weights: WeightProfile,
                 min_relevance: float | None, task: str, features: Sequence[Mapping[str, float]] | None,
                 depth: int, defer_uncached: bool) -> list[RankedItem]:
    """First phase on every candidate, the ranker on the best ``depth``, merged by ``phases``' boundary rule.

    Engagement priors are the served ranker's (the first phase predicts the ranker's heads)."""
    card = runtime.scorer.card
    popularity = popularity_of(features if features is not None else [{}] * len(items))
    query_kind = "item" if task == "item_item" else "query"
    item_kind = "query" if task == "query_query" else "item"
    query_vector = runtime.encoder.encode([query], kind=query_kind)
    vectors = item_vectors(runtime, items, kind=item_kind)
    first = _phase_heads(runtime.first_phase.score(query_vector, vectors, task=task), card, popularity)
    first_rank = rank_by_value(expected_relevance=first.expected, p_partial_or_better=first.p_partial_or_better,
                               ctr=first.ctr, cvr=first.cvr, weights=weights, min_relevance=min_relevance)
    rows = phases.second_phase_rows(first_rank.order, depth)
    if len(rows) and runtime.pair_scores is not None and task == "query_item":
        # what `indexer recommend` warms pairs for: this query, the items re-scored (a new title of one is a new
        # pair), the next few in line, and the cosine a newcomer needs to be among the len(rows) closest
        cosines = vectors @ query_vector[0]
        after = first_rank.order[len(rows):len(rows) + runtime.settings.pair_warm_next]
        runtime.pair_scores.record_query(task, HeadQuery(
            query, float(np.partition(cosines, -len(rows))[-len(rows)]), tuple(items[r].item_id for r in rows),
            tuple((items[r].item_id, items[r].text) for r in after)))
    texts = [items[r].text for r in rows]
    defer = (_deferral(runtime, query, texts, task)
             if len(rows) and defer_uncached and runtime.pair_filler is not None else None)
    scored, deferred = runtime.scorer.score_or_defer([query] * len(rows), texts, task=task, defer=defer)
    now = rows[~deferred]
    if len(now):
        heads, phase = phases.merge(first, _phase_heads(scored, card, popularity[now]), now)
    else:
        heads, phase = first, np.full(len(items), phases.FIRST, dtype=np.int64)
    score = value_scores(expected_relevance=heads.expected, ctr=heads.ctr, cvr=heads.cvr, weights=weights)
    filtered = (np.zeros(len(items), dtype=bool) if min_relevance is None
                else heads.p_partial_or_better < min_relevance)
    expected = heads.expected
    return [RankedItem(item_id=items[row].item_id, score=float(score[row]),
                       relevance=Relevance(float(heads.p_partial_or_better[row]), float(heads.p_exact[row]),
                                           float(expected[row]), heads.labels[row]),
                       ctr=float(heads.ctr[row]), cvr=float(heads.cvr[row]), filtered=bool(filtered[row]),
                       phase=int(phase[row]))
            for row in phases.keep_deferred_in_place(phases.phased_order(score, filtered, phase), rows, deferred,
                                                     filtered)]


def _deferral(runtime: Runtime, query: str, texts: list[str], task: str) -> Callable[[np.ndarray], np.ndarray]:
    """The rule for the pairs due for re-scoring that no cache holds: the few of a query re-scored before are
    left in phase 1 (``phases.deferred_rows``) and handed to the pair filler to score after the response."""
    def defer(held: np.ndarray) -> np.ndarray:
        deferred = phases.deferred_rows(held, runtime.settings.rerank_defer_max)
        if deferred.any():
            late = [text for text, later in zip(texts, deferred) if later]
            runtime.pair_filler.defer(runtime.scorer, task, [query] * len(late), late)
        return deferred
    return defer


RETRIEVAL_MODES = ("dense", "lexical", "hybrid")


def retrieve(runtime: Runtime, *, query: str, k: int, mode: str | None = None) -> list[RetrievedItem]:
    """The k best items for the query, with their stored documents, by ``mode`` (default ``settings.retrieval_mode``):

    - ``dense``: nearest items to the query tower's vector in the item index (score: cosine);
    - ``lexical``: BM25 over the item titles (``service/lexical.py``; score: BM25);
    - ``hybrid``: both lists, each ``max(k, hybrid_candidates)`` deep, fused by reciprocal rank fusion with
      constant ``rrf_k`` (``service/ranking/fusion.py``; score: the fused score)."""
    mode = mode or runtime.settings.retrieval_mode
    if mode not in RETRIEVAL_MODES:
        raise InvalidInput(f"mode {mode!r} is not known; known modes: {list(RETRIEVAL_MODES)}")
    if mode == "dense":
        hits = dense_hits(runtime, query, k)
    elif mode == "lexical":
        hits = lexical_hits(runtime, query, k)
    else:
        depth = max(k, runtime.settings.hybrid_candidates)
        lists = [[item_id for item_id, _ in dense_hits(runtime, query, depth)],
                 [item_id for item_id, _ in lexical_hits(runtime, query, depth)]]
        hits = reciprocal_rank_fusion(lists, c=runtime.settings.rrf_k, k=k)
    docs = runtime.store.get_items([item_id for item_id, _ in hits])
    return [RetrievedItem(item=doc, score=float(score)) for doc, (_, score) in zip(docs, hits) if doc is not None]


def dense_hits(runtime: Runtime, query: str, k: int) -> list[tuple[str, float]]:
    """``(item_id, cosine)`` of the k nearest items in the item index, best first."""
    scores, ids = runtime.items.search(runtime.encoder.encode([query], kind="query"), k)
    found = ids[0] >= 0
    item_ids = runtime.store.item_ids_for_vectors(ids[0][found].tolist())
    return [(item_id, float(score)) for item_id, score in zip(item_ids, scores[0][found]) if item_id is not None]


def lexical_hits(runtime: Runtime, query: str, k: int) -> list[tuple[str, float]]:
    """``(item_id, BM25)`` of the k best titles in the lexical index (none without one)."""
    if runtime.lexical is None:
        raise InvalidInput("lexical retrieval is not available in this deployment (no lexical index)")
    return runtime.lexical.search(query, k)


def keyphrase_floor(runtime: Runtime) -> float:
    """The relevance filter's P(y ≥ partial) floor: the setting if given, else the served ranker's calibrated one."""
    configured = runtime.settings.keyphrase_min_relevance
    return configured if configured is not None else runtime.scorer.relevance_floor()


def first_phase_keyphrase_floor(runtime: Runtime) -> float:
    """The floor for keyphrases only the first phase scored: the setting if given, else the one calibrated
    on validation for the served first-phase version (its card), else the ranker's."""
    configured = runtime.settings.keyphrase_min_relevance
    if configured is not None:
        return configured
    calibrated = runtime.first_phase.relevance_floor() if runtime.first_phase is not None else None
    return calibrated if calibrated is not None else runtime.scorer.relevance_floor()


def recommend_keyphrases(runtime: Runtime, *, item: ItemDocument, k: int,
                         rerank_depth: int | None = None) -> list[KeyphraseRecommendation]:
    """Keyphrases for an item: ANN candidates kept when the ranker's P(y ≥ partial) clears the floor.

    With phasing on, the first phase scores every candidate (keyphrase vectors from the keyphrase index,
    the item's from the ANN query), the ranker re-scores the best ``keyphrase_rerank_depth`` (default k)
    and each candidate must clear the floor of the phase that scored it; phase 2 ones come first.
    ``rerank_depth`` overrides the setting for this call."""
    settings = runtime.settings
    item_vector = runtime.encoder.encode([item.text], kind="item")
    scores, ids = runtime.keyphrases.search(item_vector, k * settings.keyphrase_candidates_factor)
    candidates = [(runtime.keyphrase_texts[i], float(s), i) for i, s in zip(ids[0].tolist(), scores[0])
                  if i in runtime.keyphrase_texts]
    if not candidates:
        return []
    phrases, ann = [c[0] for c in candidates], np.array([c[1] for c in candidates])
    depth = keyphrase_depth(settings, k) if rerank_depth is None else rerank_depth
    if phasing_applies(runtime, depth=depth, candidates=len(phrases), task="query_item"):
        return _keyphrases_phased(runtime, item=item, item_vector=item_vector, phrases=phrases, ann=ann,
                                  ids=np.array([c[2] for c in candidates], dtype=np.int64), k=k, depth=depth)
    rel = runtime.scorer.score(phrases, [item.text] * len(phrases), task="query_item").relevance
    labels = rel.labels
    keep = np.flatnonzero(rel.p_partial_or_better >= keyphrase_floor(runtime))
    best = keep[np.lexsort((-ann[keep], -rel.expected[keep]))][:k]  # expected relevance, then ANN score
    return [KeyphraseRecommendation(keyphrase=phrases[r], score=ann[r], p_partial_or_better=rel.p_partial_or_better[r],
                                    p_exact=rel.p_exact[r], expected=rel.expected[r], label=labels[r]) for r in best]


def _keyphrases_phased(runtime: Runtime, *, item: ItemDocument, item_vector: np.ndarray, phrases: list[str],
                       ann: np.ndarray, ids: np.ndarray, k: int, depth: int) -> list[KeyphraseRecommendation]:
    found, vectors = runtime.keyphrases.vectors(ids)
    if not found.all():  # a keyphrase index always holds its texts; embed any it lacks rather than fail
        missing = np.flatnonzero(~found)
        vectors[missing] = runtime.encoder.encode([phrases[r] for r in missing], kind="query")
    first_scores = runtime.first_phase.score(vectors, item_vector, task="query_item")
    none = np.zeros(len(phrases))
    first = phases.Heads(first_scores.relevance.p_partial_or_better, first_scores.relevance.p_exact,
                         first_scores.relevance.labels, none, none)
    floor_1, floor_2 = first_phase_keyphrase_floor(runtime), keyphrase_floor(runtime)
    first_order = phases.phased_order(first.expected, first.p_partial_or_better < floor_1,
                                      np.full(len(phrases), phases.SECOND), tiebreak=ann)
    rows = phases.second_phase_rows(first_order, depth)
    heads, phase = first, np.full(len(phrases), phases.FIRST, dtype=np.int64)
    if len(rows):
        rel = runtime.scorer.score([phrases[r] for r in rows], [item.text] * len(rows), task="query_item").relevance
        heads, phase = phases.merge(first, phases.Heads(rel.p_partial_or_better, rel.p_exact, rel.labels,
                                                        none[rows], none[rows]), rows)
    dropped = heads.p_partial_or_better < np.where(phase == phases.SECOND, floor_2, floor_1)
    expected = heads.expected
    best = [r for r in phases.phased_order(expected, dropped, phase, tiebreak=ann) if not dropped[r]][:k]
    return [KeyphraseRecommendation(keyphrase=phrases[r], score=ann[r], p_partial_or_better=heads.p_partial_or_better[r],
                                    p_exact=heads.p_exact[r], expected=expected[r], label=heads.labels[r],
                                    phase=int(phase[r])) for r in best]


def keyphrase_depth(settings: Settings, k: int) -> int:
    """The configured keyphrase re-scoring depth: ``keyphrase_rerank_depth``, else the k asked for."""
    return k if settings.keyphrase_rerank_depth is None else settings.keyphrase_rerank_depth


def recommend_for_item_id(runtime: Runtime, *, item_id: str, k: int, rerank_depth: int | None = None) -> Recommendations:
    """A stored item's keyphrases: from the cache when they were computed by the served models for the item's
    current text (its version, or an earlier one with the same text: a price change keeps them).

    The cache holds what the configured depth serves; a call with another ``rerank_depth`` is computed
    and not cached."""
    doc = runtime.store.get_items([item_id])[0]
    if doc is None:
        raise NotFound(f"item {item_id!r} is not in the catalogue")
    cache_k = runtime.settings.keyphrase_cache_k
    if rerank_depth is not None and rerank_depth != keyphrase_depth(runtime.settings, max(k, cache_k)):
        recs = recommend_keyphrases(runtime, item=doc, k=k, rerank_depth=rerank_depth)
        return Recommendations(source="computed", keyphrases=recs)
    model_version = runtime.recommendations_version
    cached = runtime.store.get_recommendations(item_id)
    if cached is not None and k <= cache_k and cached.describes(doc, model_version):
        return Recommendations(source="cache", keyphrases=cached.keyphrases[:k])
    recs = recommend_keyphrases(runtime, item=doc, k=max(k, cache_k))
    runtime.store.put_recommendations([CachedRecommendations(item_id=item_id, item_version=doc.version,
                                                             model_version=model_version, keyphrases=recs[:cache_k],
                                                             text_hash=text_hash(doc.text))])
    return Recommendations(source="computed", keyphrases=recs[:k])
