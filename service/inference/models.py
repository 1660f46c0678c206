"""Encoder and pair scorer: tokenise → backend.infer (in length-sorted sub-batches) → post-process.

These are the only callers of a backend, so everything above them (pipelines, indexer,
evaluation) is independent of whether ONNX Runtime or Triton runs the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from service.inference.base import InferenceBackend
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
    """Texts → L2-normalised embeddings, cut to the served Matryoshka dimension."""

    def __init__(self, backend, repo, model, *, max_tokens: int, sub_batch: int, dim: int) -> None:
        super().__init__(backend, repo, model, max_tokens=max_tokens, sub_batch=sub_batch)
        self.dim = dim

    @property
    def zero_shot(self) -> bool:
        """The served version is the base model exported as is (its card says so), not a trained student."""
        return "zero-shot" in self.card.get("source", "zero-shot")

    def encode(self, texts: Sequence[str], *, kind: str = "item") -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prefix = self.card.get("prefixes", {}).get(kind, "")
        texts = [prefix + t for t in texts] if prefix else list(texts)
        return matryoshka_cut(self._run_sorted(self.tokenizer(), texts, None)["embedding"], self.dim)


class PairHeads:
    """Ranker read-outs for a batch of pairs: ordinal relevance and engagement probabilities."""

    def __init__(self, relevance: OrdinalScores, ctr: np.ndarray, cvr: np.ndarray) -> None:
        self.relevance = relevance
        self.ctr = ctr
        self.cvr = cvr


class PairScorer(_RepoModel):
    """(left, right) text pairs → ordinal relevance + CTR/CVR for an entity-pair task."""

    def tasks(self) -> list[str]:
        return list(self.card.get("tasks", ["query_item"]))

    def relevance_floor(self, default: float = 0.5) -> float:
        """P(y ≥ partial) floor calibrated on the validation split for this very version (``shoprank calibrate``)."""
        return float(self.card.get("calibration", {}).get("min_relevance", default))

    def score(self, lefts: Sequence[str], rights: Sequence[str], *, task: str = "query_item") -> PairHeads:
        if not lefts:
            empty = np.zeros(0)
            return PairHeads(OrdinalScores(empty, empty), empty, empty)
        card = self.card
        prefix = card.get("task_prefixes", {}).get(task, "")
        lefts = [prefix + t for t in lefts] if prefix else list(lefts)
        extra = None
        if "task_id" in self.backend.model_info(self.model).input_names:
            task_index = card.get("tasks", ["query_item"]).index(task)
            extra = {"task_id": np.full(len(lefts), task_index, dtype=np.int64)}
        out = self._run_sorted(self.tokenizer(), lefts, list(rights), extra)
        engagement = sigmoid(out["engagement_logits"])
        cuts = card.get("calibration", {}).get("label_cuts")
        relevance = from_cumulative_logits(out["relevance_logits"], label_cuts=cuts)
        return PairHeads(relevance, engagement[:, 0], engagement[:, 1])
