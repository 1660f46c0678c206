"""Hot model swap: a new version in the model repository goes live without a restart or a failed request.

A watcher thread polls for the newest *complete* version of each model: in ``model_repo/``
(embedded: the version directory has ``model.onnx`` and its card ``shoprank.json``, which
export writes last) or on the server (Triton: its newest READY version). When one differs
from what the runtime serves, it opens a *fresh* backend — pinned to the new versions while
the serving backend stays pinned to the old ones — and warms the new models up. Then:

- **ranker only** (or a new first-phase model): a new ``Runtime`` with the new pair scorer and
  first-phase scorer replaces the old one in the holder (one reference assignment: every request sees either the old or the new model).
- **encoder**: vectors from different encoders do not mix, so the item and keyphrase indexes
  are re-embedded in the background with the new encoder while the old runtime keeps
  serving; under the write lock, items written meanwhile are caught up, and the new runtime
  (new encoder, new scorer, new indexes) replaces the old one. Writes that were already
  waiting on the old runtime land in the old index, so after a grace period one more
  catch-up runs against the store, the source of truth.

The first-phase scorer (phased ranking) always runs on the scorer's backend and is rebuilt with it
on every swap, so it is checked again against the encoder being served (``make_first_phase``): after an
encoder swap, a first phase trained on the old encoder's vectors switches phasing off.

The old backend is closed after that grace period, when no request can still hold it.
Responses report ``runtime.model_version`` (``encoder:N+ranker:M``), which therefore says
which models answered. We do not call ``backend.reload()`` in place: reloading the serving
backend would move its encoder under an index built by the previous encoder.

With Kafka replication the vector log carries the indexer's vectors, so an encoder change is
the indexer's job (re-embed and republish); this watcher then swaps only the ranker.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from service.catalogue import stable_id
from service.errors import DependencyUnavailable, NotFound
from service.index.factory import make_index
from service.inference.base import InferenceBackend
from service.inference.factory import make_backend, make_encoder, make_first_phase, make_pair_scorer
from service.inference.metrics import MODEL_SWAPS
from service.inference.models import Encoder
from service.inference.repository import latest_version
from service.runtime import Runtime, encode_all
from service.searchable import SearchableVersions
from service.settings import Settings
from service.versioned_apply import ItemChange, apply_changes

log = logging.getLogger(__name__)


class RuntimeSlot(Protocol):
    """Where the serving runtime lives (``service.api.lifespan.RuntimeHolder``): None until ready."""

    runtime: Runtime | None


def newest_version(backend: InferenceBackend, settings: Settings, model: str) -> str | None:
    """The newest complete version of ``model`` available to ``backend``; None if none is complete."""
    on_server = getattr(backend, "newest_version", None)  # Triton: newest READY version on the server
    if on_server is not None:
        return on_server(model)
    try:
        version = latest_version(settings.model_repo, model)
    except NotFound:
        return None
    return str(version.version) if (version.path / "shoprank.json").exists() else None


def catch_up(runtime: Runtime, indexed: set[str], *, batch: int) -> int:
    """Bring a re-embedded runtime's item index up to the store: the writes made while it was built.

    The versioned apply against the new index's own versions (``runtime.searchable``): newer stored
    documents are applied (a text the index already holds keeps its vector), and the items of ``indexed``
    (what the new index was built or caught up with) that are gone from the store are deleted at their
    tombstone's version. Updates ``indexed``; returns how many items changed. Call with the serving
    runtime's ``_write_lock`` held, so the store cannot move while we compare."""
    live = {doc.item_id: doc for docs in runtime.store.iter_items(batch=batch) for doc in docs}
    changes = [ItemChange(doc.item_id, doc.version, doc) for doc in live.values()]
    for item_id in indexed - live.keys():
        stored = runtime.store.item_version(item_id)
        held = runtime.searchable.held_version(stable_id(item_id))
        changes.append(ItemChange(item_id, stored if stored is not None else (held or 0) + 1, deleted=True))
    result = apply_changes(changes, index=runtime.items, versions=runtime.searchable, encoder=runtime.encoder)
    indexed.intersection_update(live)
    indexed.update(result.upserted)
    return len(result.upserted) + len(result.deleted)


def reembedded_runtime(runtime: Runtime, *, encoder: Encoder, settings: Settings) -> tuple[Runtime, set[str]]:
    """A copy of ``runtime`` whose item and keyphrase indexes are rebuilt with ``encoder`` (no locks held),
    and the items its index holds.

    Each index gets one upsert of all its vectors, as at start-up (an IVF index trains on it).
    """
    batch = settings.index_build_batch
    keyphrases = make_index(settings, name="keyphrases")
    ids = np.fromiter(runtime.keyphrase_texts.keys(), dtype=np.int64, count=len(runtime.keyphrase_texts))
    keyphrases.upsert(ids, encode_all(encoder, list(runtime.keyphrase_texts.values()), kind="query", batch=batch,
                                      label="keyphrases (new encoder)"))
    docs = [doc for part in runtime.store.iter_items(batch=batch) for doc in part]
    items = make_index(settings, name="items")
    items.upsert(np.array([stable_id(doc.item_id) for doc in docs], dtype=np.int64),
                 encode_all(encoder, [doc.text for doc in docs], kind="item", batch=batch, label="items (new encoder)"))
    return dataclasses.replace(runtime, encoder=encoder, items=items, keyphrases=keyphrases,
                               searchable=SearchableVersions.of_docs(docs)), {doc.item_id for doc in docs}


class ModelSwapWatcher:
    """Polls for new model versions every ``settings.model_swap_poll_s`` and swaps them in."""

    def __init__(self, slot: RuntimeSlot, settings: Settings, *, grace_s: float = 2.0,
                 backend_factory: Callable[[Settings], InferenceBackend] = make_backend) -> None:
        self._slot = slot
        self._settings = settings
        self._grace_s = grace_s
        self._backend_factory = backend_factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: set[tuple[str, str]] = set()  # (encoder, ranker) versions that did not load
        self._retired: list[InferenceBackend] = []  # backends no runtime refers to any more
        self._owned: list[InferenceBackend] = []  # backends made here that the runtime does not close
        self._indexed_encoder: str | None = None  # the encoder version the serving indexes were built with
        self._first_phase_seen: str | None = None  # the newest first-phase version considered at the last swap

    def start(self) -> ModelSwapWatcher:
        self._thread = threading.Thread(target=self._run, name="model-swap", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._settings.model_swap_poll_s):
            try:
                self.check_once()
            except DependencyUnavailable as exc:
                log.warning("model swap: poll skipped: %s", exc.message)
            except Exception:  # the watcher must outlive one bad poll; the old models keep serving
                log.exception("model swap: poll failed")

    def stop(self, *, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        runtime = self._slot.runtime
        for backend in self._retired + [b for b in self._owned if runtime is None or b is not runtime.backend]:
            backend.close()
        self._retired, self._owned = [], []

    # ------------------------------------------------------------------ one poll

    def check_once(self) -> str | None:
        """Swap in new versions if there are any; returns ``"ranker"``, ``"encoder"`` or None."""
        runtime = self._slot.runtime
        if runtime is None:
            return None
        settings = self._settings
        if self._indexed_encoder is None:
            self._indexed_encoder = runtime.encoder.version  # first sight: the indexes were built with it
            self._first_phase_seen = self._newest_first_phase(runtime)
        # the index's encoder, not the encoder's current pin: Triton may have moved a pin whose version it unloaded
        have = (self._indexed_encoder, runtime.scorer.version, self._first_phase_seen)
        want = (newest_version(runtime.encoder.backend, settings, settings.encoder_model) or have[0],
                newest_version(runtime.scorer.backend, settings, settings.ranker_model) or have[1],
                self._newest_first_phase(runtime) or have[2])
        if want == have or want in self._failed:
            return None
        kind = "encoder" if want[0] != have[0] else "ranker"
        if kind == "encoder" and settings.kafka_bootstrap:
            log.warning("model swap: encoder %s found, but with Kafka the indexer re-embeds; swapping the ranker only",
                        want[0])
            kind = "ranker" if want[1:] != have[1:] else None
            if kind is None:
                self._failed.add(want)  # nothing this process can do for that pair of versions
                return None
        started = time.perf_counter()
        backend = self._backend_factory(settings)  # fresh: pins the newest versions, the old one keeps its own
        try:
            scorer = make_pair_scorer(backend, settings, shared=runtime.pair_scores)
            scorer.score(["warm up"], ["warm up"], task=scorer.tasks()[0])
            encoder = make_encoder(backend, settings, cache=runtime.encoder.cache) if kind == "encoder" else None
            if encoder is not None:
                encoder.encode(["warm up"], kind="query")
            first_phase, phasing = make_first_phase(backend, settings, encoder or runtime.encoder)
            if first_phase is not None:
                first_phase.score(np.zeros((1, settings.embedding_dim), np.float32),
                                  np.zeros((1, settings.embedding_dim), np.float32), task=first_phase.tasks()[0])
        except Exception:
            backend.close()
            self._failed.add(want)
            MODEL_SWAPS.labels("failed").inc()
            log.exception("model swap: %s is not usable; still serving %s", want, runtime.model_version)
            return None
        try:
            phased = {"first_phase": first_phase, "phasing": phasing}
            if encoder is not None:
                self._swap_encoder(runtime, backend, encoder, scorer, phased)
            else:
                self._swap_ranker(runtime, backend, scorer, phased)
        except Exception:
            if self._slot.runtime is runtime:  # failed before the switch: the old models keep serving
                backend.close()
            raise
        self._first_phase_seen = want[2]
        MODEL_SWAPS.labels(kind).inc()
        log.info("model swap: now serving %s", self._slot.runtime.model_version,
                 extra={"event": "model_swap", "kind": kind, "previous": f"encoder:{have[0]}+ranker:{have[1]}",
                        "seconds": round(time.perf_counter() - started, 3)})
        self._close_retired()
        return kind

    def _newest_first_phase(self, runtime: Runtime) -> str | None:
        """The newest complete first-phase version, None when there is none (phasing stays as it is)."""
        try:
            return newest_version(runtime.scorer.backend, self._settings, self._settings.first_phase_model)
        except NotFound:  # Triton serves no first-phase model
            return None

    def _swap_ranker(self, runtime: Runtime, backend: InferenceBackend, scorer, phased: dict) -> None:
        old_backend = runtime.scorer.backend
        self._slot.runtime = dataclasses.replace(runtime, scorer=scorer, **phased)
        self._owned.append(backend)
        if old_backend is not runtime.backend:  # the encoder still uses the runtime's own backend
            self._owned = [b for b in self._owned if b is not old_backend]
            self._retired.append(old_backend)

    def _swap_encoder(self, runtime: Runtime, backend: InferenceBackend, encoder: Encoder, scorer,
                      phased: dict) -> None:
        settings = self._settings
        log.info("model swap: re-embedding items and keyphrases with %s while %s serves", encoder.model_version,
                 runtime.model_version)
        fresh, indexed = reembedded_runtime(runtime, encoder=encoder, settings=settings)
        fresh = dataclasses.replace(fresh, backend=backend, scorer=scorer, **phased)
        with runtime._write_lock:  # shared by both runtimes: no write can slip between catch-up and switch
            caught = catch_up(fresh, indexed, batch=settings.index_build_batch)
            self._slot.runtime = fresh
            self._indexed_encoder = encoder.version
        self._stop.wait(self._grace_s)  # requests that took the old runtime finish (or write) meanwhile
        with fresh._write_lock:
            late = catch_up(fresh, indexed, batch=settings.index_build_batch)
        log.info("model swap: %d items caught up at the switch, %d re-embedded after the grace period", caught, late)
        old = [runtime.backend] + ([runtime.scorer.backend] if runtime.scorer.backend is not runtime.backend else [])
        self._retired += old
        self._owned = [b for b in self._owned if all(b is not r for r in old)]

    def _close_retired(self) -> None:
        if not self._retired:
            return
        self._stop.wait(self._grace_s)
        for backend in self._retired:
            backend.close()
        self._retired = []


def start_model_swap(slot: RuntimeSlot, settings: Settings) -> ModelSwapWatcher | None:
    """Start the watcher (the API's lifespan calls this); None when ``model_swap_poll_s`` is 0."""
    if settings.model_swap_poll_s <= 0:
        return None
    return ModelSwapWatcher(slot, settings).start()
