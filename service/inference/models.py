"""Encoder and pair scorer: tokenise → backend.infer (in length-sorted sub-batches) → post-process.

These are the only callers of a backend, so everything above them (pipelines, indexer,
evaluation) is independent of whether ONNX Runtime or Triton runs the model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from service.inference.base import InferenceBackend
from service.inference.row_cache import RowCache, Tier
from service.inference.tokenize import TextTokenizer, length_sorted_chunks
from service.matryoshka import matryoshka_cut
from service.ranking.ordinal import OrdinalScores, from_cumulative_logits, sigmoid


@lru_cache(maxsize=16)
def _tokenizer(path: Path, max_tokens: int) -> TextTokenizer:
    return TextTokenizer(path, max_tokens=max_tokens)


@lru_cache(maxsize=32)
def _card(repo: Path, model: str, version: str) -> dict:
    """A version's card (``shoprank.json``); version directories are immutable once complete."""
    import json

    card_path = repo / model / version / "shoprank.json"
    return json.loads(card_path.read_text()) if card_path.exists() else {}


def forget_cards() -> None:
    """Drop cached cards: ``shoprank calibrate`` writes its floor into a version's card after export."""
    _card.cache_clear()


class _RepoModel:
    """A named model of the repository whose tokenizer and card follow the served version."""

    def __init__(self, backend: InferenceBackend, repo: Path, model: str, *, max_tokens: int, sub_batch: int) -> None:
        self.backend = backend
        self.repo = repo
        self.model = model
        self.max_tokens = max_tokens
        self.sub_batch = sub_batch

    @property
    def version(self) -> str:
        return self.backend.model_info(self.model).version

    @property
    def model_version(self) -> str:
        return f"{self.model}:{self.version}"

    @property
    def card(self) -> dict:
        return _card(self.repo, self.model, self.version)

    def tokenizer(self) -> TextTokenizer:
        return _tokenizer(self.repo / self.model / self.version / "tokenizer.json", self.max_tokens)

    def _run_sorted(self, tok: TextTokenizer, texts: Sequence[str], pairs: Sequence[str] | None, extra: dict | None = None):
        """Run the model over length-sorted sub-batches and return outputs in input order."""
        lengths = tok.lengths(texts, pairs)
        out: dict[str, np.ndarray] = {}
        for idx in length_sorted_chunks(lengths, size=self.sub_batch):
            batch = tok([texts[i] for i in idx], None if pairs is None else [pairs[i] for i in idx])
            if extra:
                batch.update({k: v[idx] for k, v in extra.items()})
            result = self.backend.infer(self.model, batch)
            for name, value in result.items():
                if name not in out:
                    out[name] = np.empty((len(texts), *value.shape[1:]), dtype=value.dtype)
                out[name][idx] = value
        return out


class Encoder(_RepoModel):
    """Texts → L2-normalised embeddings, cut to the served Matryoshka dimension.

    Items are cut at ``max_tokens``, queries at ``query_max_tokens`` (when given): a search box's text is
    short, and a 256-character query must not cost an item's encode. With an embedding ``RowCache``
    (``service/inference/row_cache.py``) texts encoded before by this version are not encoded again."""

    def __init__(self, backend, repo, model, *, max_tokens: int, sub_batch: int, dim: int,
                 query_max_tokens: int | None = None, cache: RowCache | None = None) -> None:
        super().__init__(backend, repo, model, max_tokens=max_tokens, sub_batch=sub_batch)
        self.dim = dim
        self.query_max_tokens = query_max_tokens or max_tokens
        self.cache = cache if cache is not None and cache.size > 0 else None

    @property
    def zero_shot(self) -> bool:
        """The served version is the base model exported as is (its card says so), not a trained student."""
        return "zero-shot" in self.card.get("source", "zero-shot")

    @property
    def vector_space(self) -> str:
        """The encoder whose space the vectors are in: this one (``TwoTowerEncoder`` differs)."""
        return self.model_version

    def uncached(self) -> Encoder:
        """This encoder without its cache, for bulk builds: a whole catalogue is seen once and would only
        push the head queries out of the LRU."""
        bare = copy.copy(self)
        bare.cache = None
        return bare

    def encode(self, texts: Sequence[str], *, kind: str = "item") -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.cache is None:
            return self._encode(texts, kind)
        keys = [(self.model_version, kind, text) for text in texts]
        return self.cache.rows(keys, lambda todo: self._encode([texts[r] for r in todo], kind))

    def _encode(self, texts: Sequence[str], kind: str) -> np.ndarray:
        prefix = self.card.get("prefixes", {}).get(kind, "")
        texts = [prefix + t for t in texts] if prefix else list(texts)
        tokenizer = self.tokenizer() if kind == "item" else _tokenizer(
            self.repo / self.model / self.version / "tokenizer.json", self.query_max_tokens)
        return matryoshka_cut(self._run_sorted(tokenizer, texts, None)["embedding"], self.dim)


class TwoTowerEncoder:
    """Queries through the served encoder, items through a smaller item tower distilled onto its vectors.

    Items are embedded on every catalogue write and every rebuild, queries once per request, so the item
    side is where a cheaper model buys throughput (``training/item_tower/``). The tower was trained to
    land on the encoder's item vectors, so both sides stay in one space. ``model_version`` names both:
    vectors tagged with it (index snapshots, the vector log) are the tower's, not the encoder's.
    """

    def __init__(self, query: Encoder, item: Encoder) -> None:
        self.query, self.item = query, item

    def __getattr__(self, name: str):  # backend, repo, model, version, card, dim, tokenizer, ... of the encoder
        return getattr(self.query, name)

    @property
    def model_version(self) -> str:
        return f"{self.query.model_version}+{self.item.model_version}"

    @property
    def vector_space(self) -> str:
        """The encoder whose space the vectors are in (what a first phase trained on vectors must match)."""
        return self.query.model_version

    def uncached(self) -> TwoTowerEncoder:
        return TwoTowerEncoder(self.query.uncached(), self.item.uncached())

    def encode(self, texts: Sequence[str], *, kind: str = "item") -> np.ndarray:
        return (self.item if kind == "item" else self.query).encode(texts, kind=kind)


class PairHeads:
    """Ranker read-outs for a batch of pairs: ordinal relevance and engagement probabilities."""

    def __init__(self, relevance: OrdinalScores, ctr: np.ndarray, cvr: np.ndarray) -> None:
        self.relevance = relevance
        self.ctr = ctr
        self.cvr = cvr


def _heads(card: dict, relevance_logits: np.ndarray, engagement_logits: np.ndarray) -> PairHeads:
    """The response heads from the two raw outputs both scorers share (the ranker's meaning)."""
    engagement = sigmoid(engagement_logits)
    relevance = from_cumulative_logits(relevance_logits, label_cuts=card.get("calibration", {}).get("label_cuts"))
    return PairHeads(relevance, engagement[:, 0], engagement[:, 1])


class PairScorer(_RepoModel):
    """(left, right) text pairs → ordinal relevance + CTR/CVR for an entity-pair task.

    With a pair-score ``RowCache`` (``service/inference/row_cache.py``) the raw outputs of pairs seen before
    are reused and only the others reach the backend. With a ``shared`` tier (``service/store/pair_scores.py``:
    Redis, filled by every process and warmed by ``indexer recommend``) the LRU's misses are looked up there
    before the model runs, and what the model computes is shared."""

    def __init__(self, backend, repo, model, *, max_tokens: int, sub_batch: int, cache: RowCache | None = None,
                 shared: Tier | None = None) -> None:
        super().__init__(backend, repo, model, max_tokens=max_tokens, sub_batch=sub_batch)
        self.cache = cache
        self.shared = shared

    def tasks(self) -> list[str]:
        return list(self.card.get("tasks", ["query_item"]))

    def relevance_floor(self, default: float = 0.5) -> float:
        """P(y ≥ partial) floor calibrated on the validation split for this very version (``shoprank calibrate``)."""
        return float(self.card.get("calibration", {}).get("min_relevance", default))

    def score(self, lefts: Sequence[str], rights: Sequence[str], *, task: str = "query_item") -> PairHeads:
        return self.score_or_defer(lefts, rights, task=task)[0]

    def score_or_defer(self, lefts: Sequence[str], rights: Sequence[str], *, task: str = "query_item",
                       defer: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[PairHeads, np.ndarray]:
        """Heads for the pairs, except those ``defer`` leaves out, and the mask of those left out.

        ``defer`` sees which pairs a cache holds (the LRU, else the shared tier: held ones cost no model call)
        and answers which of the others not to score now (phased ranking's deferral, ``phases.deferred_rows``).
        The heads are those of the pairs kept, in input order. Each pair is looked up once in each tier, so the
        cache counters say what happened to it."""
        if not lefts:
            empty = np.zeros(0)
            return PairHeads(OrdinalScores(empty, empty), empty, empty), np.zeros(0, dtype=bool)
        card = self.card
        prefix = card.get("task_prefixes", {}).get(task, "")
        extra_inputs = "task_id" in self.backend.model_info(self.model).input_names
        task_index = card.get("tasks", ["query_item"]).index(task) if extra_inputs else 0
        keys = [(self.model_version, task, left, right) for left, right in zip(lefts, rights)]
        known = self._held_rows(keys)
        held = np.array([row is not None for row in known])
        deferred = np.zeros(len(keys), dtype=bool) if defer is None else np.asarray(defer(held), dtype=bool)
        todo = [r for r, row in enumerate(known) if row is None and not deferred[r]]
        if todo:
            extra = {"task_id": np.full(len(todo), task_index, dtype=np.int64)} if extra_inputs else None
            out = self._run_sorted(self.tokenizer(), [prefix + lefts[r] for r in todo], [rights[r] for r in todo],
                                   extra)
            fresh = np.concatenate([out["relevance_logits"], out["engagement_logits"]], axis=1).astype(np.float32)
            for tier in (self.cache, self.shared):
                if tier is not None:
                    tier.put_many([keys[r] for r in todo], fresh)
            for r, row in zip(todo, fresh):
                known[r] = row
        kept = [row for row, later in zip(known, deferred) if not later]
        raw = np.stack(kept) if kept else np.zeros((0, 4), dtype=np.float32)
        return _heads(card, raw[:, :2], raw[:, 2:]), deferred

    def _held_rows(self, keys: list) -> list[np.ndarray | None]:
        """The ranker's four raw outputs per key where the LRU holds them, else the shared tier (copied into the
        LRU); None where neither does."""
        known = self.cache.get_many(keys) if self.cache is not None else [None] * len(keys)
        missing = [r for r, row in enumerate(known) if row is None]
        if self.shared is None or not missing:
            return known
        found = [(r, row) for r, row in zip(missing, self.shared.get_many([keys[r] for r in missing]))
                 if row is not None]
        if found and self.cache is not None:
            self.cache.put_many([keys[r] for r, _ in found], np.stack([row for _, row in found]))
        for r, row in found:
            known[r] = row
        return known


class FirstPhaseScorer(_RepoModel):
    """(query vector, item vector) pairs → the ranker's heads, predicted by a small model over the two vectors.

    The first phase of phased ranking (``service/ranking/phases.py``): the vectors are the served encoder's
    (so the card's ``encoder`` must name the served encoder version), its outputs have the ranker's names
    and meaning, and the response fields are filled exactly as from the ranker. Runs through the backend
    like the other models, in batches of at most the backend's ``max_batch`` rows."""

    def __init__(self, backend: InferenceBackend, repo: Path, model: str) -> None:
        super().__init__(backend, repo, model, max_tokens=0, sub_batch=0)

    def tasks(self) -> list[str]:
        return list(self.card.get("tasks", ["query_item"]))

    @property
    def encoder(self) -> str | None:
        """The encoder version (``encoder:N``) whose vectors the model was trained on."""
        return self.card.get("encoder")

    def relevance_floor(self) -> float | None:
        """P(y ≥ partial) floor calibrated on validation for first-phase scores (``shoprank calibrate``)."""
        floor = self.card.get("calibration", {}).get("min_relevance")
        return None if floor is None else float(floor)

    def score(self, query_vectors: np.ndarray, item_vectors: np.ndarray, *, task: str = "query_item") -> PairHeads:
        query_vectors = np.ascontiguousarray(query_vectors, dtype=np.float32)
        item_vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
        rows = max(len(query_vectors), len(item_vectors)) if len(query_vectors) and len(item_vectors) else 0
        if rows == 0:
            empty = np.zeros(0)
            return PairHeads(OrdinalScores(empty, empty), empty, empty)
        # one query against many items (rank), or many keyphrases against one item: repeat the single vector
        query_vectors = np.ascontiguousarray(np.broadcast_to(query_vectors, (rows, query_vectors.shape[1])))
        item_vectors = np.ascontiguousarray(np.broadcast_to(item_vectors, (rows, item_vectors.shape[1])))
        card = self.card
        task_ids = np.full(rows, card.get("tasks", ["query_item"]).index(task), dtype=np.int64)
        step = max(1, self.backend.model_info(self.model).max_batch)
        parts = [self.backend.infer(self.model, {"query_embedding": query_vectors[start : start + step],
                                                 "item_embedding": item_vectors[start : start + step],
                                                 "task_id": task_ids[start : start + step]})
                 for start in range(0, rows, step)]
        relevance = np.concatenate([p["relevance_logits"] for p in parts])
        engagement = np.concatenate([p["engagement_logits"] for p in parts])
        return _heads(card, relevance, engagement)
