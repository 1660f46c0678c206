"""The serving runtime: models, indexes and store wired together from one ``Settings``.

``build_runtime`` loads the models, seeds the store with the catalogue at version 0 (never over a
newer write or tombstone, so a shared store is safe to seed again), and restores each
index from its snapshot when that snapshot was made by the same encoder from the same source
(its sidecar meta), else encodes and snapshots it. ``Runtime.apply_items`` is the embedded write
path for item changes: version check, re-embed (skipped when the text the index holds is unchanged),
index update, then ``runtime.searchable`` (what ``GET /v1/items/{id}`` reports). With Kafka the replica
follower (``service/stream/follower.py``) changes the index and the same map instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from tqdm import tqdm

from service.catalogue import load_catalogue, stable_id
from service.index.base import VectorIndex
from service.index.factory import index_layout, make_index, restorable, restore_index
from service.inference.base import InferenceBackend
from service.inference.factory import make_backend, make_encoder, make_first_phase, make_pair_scorer
from service.inference.models import Encoder, FirstPhaseScorer, PairScorer
from service.inference.pair_filler import PairFiller
from service.inference.row_cache import embedding_cache
from service.lexical import Bm25LexicalIndex, LexicalIndex, load_or_build
from service.searchable import SearchableVersions
from service.settings import Settings
from service.store.base import ItemDocument, ItemStore
from service.store.pair_scores import RedisPairScores, make_pair_scores
from service.versioned_apply import ApplyResult, ItemChange, commit, is_newer, prepare

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    backend: InferenceBackend
    encoder: Encoder
    scorer: PairScorer
    items: VectorIndex
    keyphrases: VectorIndex
    keyphrase_texts: dict[int, str]
    store: ItemStore
    first_phase: FirstPhaseScorer | None = None  # None: phasing off, every candidate goes to the ranker
    phasing: str = "off"  # what /readyz says about phased ranking (on / off and why)
    searchable: SearchableVersions = field(default_factory=SearchableVersions)
    """What ``items`` holds per item (version, text hash); changed right after the index, never before."""
    lexical: LexicalIndex | None = None
    """BM25 over the item titles (``service/lexical.py``); written with ``items`` by every write path."""
    pair_scores: RedisPairScores | None = None
    """Shared pair scores and the head-query log (``service/store/pair_scores.py``); None without Redis."""
    pair_filler: PairFiller | None = None
    """Scores, after the response, the few pairs a re-scored query deferred (``service/inference/pair_filler.py``);
    None with ``rerank_defer_max`` 0 or no pair cache (nothing would find the scores)."""
    ready: bool = False
    _write_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def model_version(self) -> str:
        """The served models, e.g. ``encoder:4+ranker:3`` or, with phased ranking on,
        ``encoder:4+ranker:3+first_phase:1`` (follows a hot model swap; the keyphrase cache keys on it)."""
        served = f"{self.encoder.model_version}+{self.scorer.model_version}"
        return served if self.first_phase is None else f"{served}+{self.first_phase.model_version}"

    @property
    def recommendations_version(self) -> str:
        """What cached keyphrase recommendations must match: the served models and, with phased ranking on,
        the keyphrase re-scoring depth (another depth serves other keyphrases)."""
        if self.first_phase is None:
            return self.model_version
        return f"{self.model_version}@depth:{self.settings.keyphrase_rerank_depth}"

    def apply_items(self, *, upserts: Sequence[ItemDocument] = (),
                    deletes: Sequence[tuple[str, int]] = ()) -> ApplyResult:
        """The embedded write path: the store's compare-and-set decides, then the item index follows.

        The versioned apply (``service/versioned_apply.py``) prepares first, so an encoder failure
        changes nothing; an upsert whose text the index already holds (a price- or attribute-only change)
        advances the version without a model call. Serialised by a lock so that the store's order of
        versions and the index's order of vectors cannot disagree when two writers race on one item.
        """
        with self._write_lock:
            changes = [ItemChange(doc.item_id, doc.version, doc) for doc in upserts
                       if is_newer(doc.version, self.store.item_version(doc.item_id))]
            stale = len(upserts) - len(changes)
            changes += [ItemChange(item_id, version, deleted=True) for item_id, version in deletes]
            prepared = prepare(changes, versions=self.searchable, encoder=self.encoder, dim=self.items.dim)
            docs = [c.doc for c in changes if not c.deleted]
            stored = self.store.put_items(docs) if docs else []
            removed = self.store.delete_items([d[0] for d in deletes], [d[1] for d in deletes]) if deletes else []
            won = {doc.item_id for doc, ok in zip(docs, stored) if ok}
            won |= {item_id for (item_id, _), ok in zip(deletes, removed) if ok}
            result = commit(prepared, index=self.items, versions=self.searchable, lexical=self.lexical, only=won)
        return replace(result, stale=stale + (len(deletes) - sum(removed)),
                       not_stored=(len(stored) - sum(stored)))

    def close(self) -> None:
        if self.pair_filler is not None:
            self.pair_filler.close()
        self.store.close()
        if self.pair_scores is not None:
            self.pair_scores.close()
        self.backend.close()


def make_store(settings: Settings) -> ItemStore:
    if settings.redis_url:
        from service.store.redis_store import RedisStore  # optional engine, imported only when chosen

        return RedisStore(settings)
    from service.store.memory import MemoryStore

    return MemoryStore(recommendations_ttl_s=settings.keyphrase_cache_ttl_s)


def encode_all(encoder: Encoder, texts: Sequence[str], *, kind: str, batch: int, label: str) -> np.ndarray:
    """Encode many texts in batches with a progress bar (the start-up cost of a fresh index), past the
    serving encoder's embedding cache."""
    encoder = encoder.uncached()
    parts = [encoder.encode(texts[i : i + batch], kind=kind)
             for i in tqdm(range(0, len(texts), batch), desc=f"encode {label}", unit="batch", mininterval=5)]
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dim), np.float32)


def load_or_build_index(settings: Settings, *, name: str, meta: dict, build: Callable[[], tuple]) -> VectorIndex:
    """Restore ``state_dir/<name>.faiss`` when its sidecar matches ``meta`` and the layout, else build and
    snapshot it. A snapshot that matches but does not load (torn by a crash, unreadable) is rebuilt too."""
    path = settings.state_dir / f"{name}.faiss"
    if restorable(settings, path, meta):
        log.info("restoring %s index from %s", name, path)
        try:
            return restore_index(settings, path)
        except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: FAISS could not read the bytes
            log.warning("%s index snapshot %s does not load (%s); rebuilding it", name, path, exc)
    ids, vectors = build()
    index = make_index(settings, name=name)
    index.upsert(ids, vectors)
    index.snapshot(path, meta={**meta, "layout": index_layout(settings)})
    log.info("built %s index: %d vectors, snapshot %s", name, len(index), path)
    return index


def seed_item_vectors(settings: Settings, encoder: Encoder, seed: Sequence[ItemDocument]) -> tuple:
    """Ids and vectors of a fresh item index: embedded here, or read from ``settings.catalogue_vectors``
    (the batch job's Parquet) for every seed item it holds a vector of the served encoder and same text for."""
    def embed(texts: list[str]) -> np.ndarray:
        return encode_all(encoder, texts, kind="item", batch=settings.index_build_batch, label="items")

    if settings.catalogue_vectors is not None:
        from service.catalogue_vectors import seed_vectors

        return seed_vectors(settings.catalogue_vectors, seed, model_version=encoder.model_version,
                            dim=encoder.dim, embed=embed)
    return np.array([stable_id(d.item_id) for d in seed], dtype=np.int64), embed([d.text for d in seed])


def build_runtime(settings: Settings) -> Runtime:
    """Everything the API needs, ready to serve (the slow part of start-up)."""
    backend = make_backend(settings)
    encoder = make_encoder(backend, settings, cache=embedding_cache(settings.embedding_cache_size))
    pair_scores = make_pair_scores(settings)
    scorer = make_pair_scorer(backend, settings, shared=pair_scores)
    store = make_store(settings)
    catalogue = load_catalogue(settings.data_dir, limit=settings.catalogue_limit)
    seed = [ItemDocument(item_id=i, title=t) for i, t in zip(catalogue.item_ids, catalogue.item_titles)]
    store.put_items(seed)  # version 0: a shared store keeps every newer write and tombstone it already has
    batch = settings.index_build_batch
    items = load_or_build_index(
        settings, name="items",
        meta={"encoder": encoder.model_version, "source": f"home-depot items limit={settings.catalogue_limit}"},
        build=lambda: seed_item_vectors(settings, encoder, seed))
    texts = {stable_id(text): text for text in catalogue.keyphrases}
    keyphrases = load_or_build_index(
        settings, name="keyphrases",
        meta={"encoder": encoder.model_version, "source": f"home-depot keyphrases n={len(texts)}"},
        build=lambda: (np.fromiter(texts.keys(), dtype=np.int64, count=len(texts)),
                       encode_all(encoder, list(texts.values()), kind="query", batch=batch, label="keyphrases")))
    first_phase, phasing = make_first_phase(backend, settings, encoder)
    lexical = lexical_index_of(settings, seed, snapshot=True)
    return Runtime(settings=settings, backend=backend, encoder=encoder, scorer=scorer, items=items,
                   keyphrases=keyphrases, keyphrase_texts=texts, store=store,
                   searchable=SearchableVersions.of_docs(seed),
                   first_phase=first_phase, phasing=phasing, lexical=lexical, pair_scores=pair_scores,
                   pair_filler=make_pair_filler(settings))


def make_pair_filler(settings: Settings) -> PairFiller | None:
    """The deferred pairs' filler; its thread starts on the first deferral, so a process that never ranks has none."""
    if settings.rerank_defer_max <= 0 or settings.pair_cache_size <= 0:
        return None
    return PairFiller(max_pending=settings.pair_fill_max_pending, nice=settings.pair_fill_nice)


def lexical_index_of(settings: Settings, docs, *, snapshot: bool = False) -> LexicalIndex:
    """The lexical index over these documents' titles: the seed catalogue (``snapshot``: restored from, or saved
    to, ``state_dir/lexical`` like the vector indexes) or a store's documents after a replica restore."""
    pairs = [(doc.item_id, doc.title) for doc in docs]
    if snapshot:
        return load_or_build(settings.state_dir / "lexical", pairs, rebuild_after=settings.lexical_rebuild_after)
    return Bm25LexicalIndex(pairs, rebuild_after=settings.lexical_rebuild_after)
