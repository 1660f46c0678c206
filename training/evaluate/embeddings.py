"""Query and item embeddings of the systems the report compares: the served encoder and the student.

Both are encoded once at full width (384-d) and cut afterwards: a Matryoshka cut keeps the first d
dimensions and re-normalises, which is what ``Encoder`` does for ``SHOPRANK_EMBEDDING_DIM``. The
served encoder goes through ``service.inference`` (int8 ONNX, the deployed precision); the student
is a sentence-transformers directory (``artifacts/student*``, gitignored), loaded only when present.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.inference.models import Encoder
from service.matryoshka import matryoshka_cut
from service.runtime import encode_all
from training.names import STUDENT_CARD

log = logging.getLogger(__name__)


@dataclass
class EmbeddingSet:
    """One system's full-width vectors for the evaluated queries and items (row order = the given lists)."""

    name: str
    queries: list[str]
    query_vectors: np.ndarray
    item_ids: list[str]
    item_vectors: np.ndarray

    def __post_init__(self) -> None:
        self._query_row = {q: i for i, q in enumerate(self.queries)}
        self._item_row = {item: i for i, item in enumerate(self.item_ids)}

    def query_matrix(self, dim: int) -> np.ndarray:
        return matryoshka_cut(self.query_vectors, dim)

    def item_matrix(self, dim: int) -> np.ndarray:
        return matryoshka_cut(self.item_vectors, dim)

    def pair_cosines(self, queries: Sequence[str], item_ids: Sequence[str], dim: int) -> np.ndarray:
        """Cosine of each (query, item) pair at the ``dim`` cut."""
        q = self.query_matrix(dim)[[self._query_row[x] for x in queries]]
        t = self.item_matrix(dim)[[self._item_row[x] for x in item_ids]]
        return np.einsum("ij,ij->i", q, t)


def served_embeddings(encoder: Encoder, *, queries: list[str], item_ids: list[str], item_titles: list[str],
                      batch: int = 256) -> EmbeddingSet:
    """The served encoder at full width: queries as ``kind="query"``, titles as ``kind="item"`` (as the service)."""
    full = Encoder(encoder.backend, encoder.repo, encoder.model, max_tokens=encoder.max_tokens,
                   sub_batch=encoder.sub_batch, dim=int(encoder.card.get("dim", 384)))
    q = encode_all(full, queries, kind="query", batch=batch, label="zero-shot queries")
    t = encode_all(full, item_titles, kind="item", batch=batch, label="zero-shot items")
    return EmbeddingSet(f"zero-shot ({encoder.model_version})", queries, q, item_ids, t)


def student_card(path: Path) -> dict:
    card = path / STUDENT_CARD
    return json.loads(card.read_text()) if card.exists() else {}


def student_embeddings(path: Path, *, queries: list[str], item_ids: list[str], item_titles: list[str],
                       threads: int = 2, batch_size: int = 64, name: str | None = None) -> EmbeddingSet:
    """The distilled student (sentence-transformers dir) at full width, with its recorded prefixes and length."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    card = student_card(path)
    model = SentenceTransformer(str(path), device="cpu")
    if card.get("max_seq_length"):
        model.max_seq_length = int(card["max_seq_length"])  # the length it was trained at
    prefixes = card.get("prefixes", {})

    def encode(texts: list[str], kind: str) -> np.ndarray:
        prefix = prefixes.get(kind, "")
        log.info("student: encoding %d %s texts (max_seq_length %s)", len(texts), kind, model.max_seq_length)
        return model.encode([prefix + t for t in texts], batch_size=batch_size, show_progress_bar=True,
                            convert_to_numpy=True, normalize_embeddings=True).astype(np.float32)

    return EmbeddingSet(name or f"student ({path.name})", queries, encode(queries, "query"), item_ids,
                        encode(item_titles, "item"))
