"""Does the item tower keep retrieval? Catalogue recall@k through the served funnel, side by side.

Queries go through the served encoder in both arms; the catalogue's items through the served encoder
(today's index) in one arm and through the exported tower (int8, as the service would run it) in the
other. The tower ships only if its recall is within ``max_drop`` of the encoder's on VALIDATION
(issue 17: 0.01); the test split is reported beside it, never used to decide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.settings import Settings


@dataclass(frozen=True)
class GateResult:
    split: str
    k: int
    encoder_recall: float
    tower_recall: float
    mean_item_cosine: float
    min_item_cosine: float

    @property
    def drop(self) -> float:
        return self.encoder_recall - self.tower_recall

    def passes(self, max_drop: float) -> bool:
        return self.drop <= max_drop

    def as_dict(self) -> dict:
        return {"split": self.split, "k": self.k, "encoder_recall": round(self.encoder_recall, 4),
                "tower_recall": round(self.tower_recall, 4), "drop": round(self.drop, 4),
                "mean_item_cosine": round(self.mean_item_cosine, 4), "min_item_cosine": round(self.min_item_cosine, 4)}


def tower_item_vectors(settings: Settings, tower_model: str, titles: list[str]) -> np.ndarray:
    """The exported tower's full-width item vectors, through ``service.inference`` as served."""
    from service.inference.factory import make_backend
    from service.inference.models import Encoder
    from service.runtime import encode_all

    backend = make_backend(settings)
    try:
        tower = Encoder(backend, settings.model_repo, tower_model, max_tokens=settings.item_max_tokens,
                        sub_batch=settings.inference_sub_batch, dim=384)
        return encode_all(tower, titles, kind="item", batch=512, label=f"{tower_model} items").astype(np.float32)
    finally:
        backend.close()


def gate(settings: Settings, *, titles: list[str], encoder_vectors: np.ndarray,
         tower_vectors: np.ndarray, splits: tuple[str, ...] = ("validation", "test"), k: int = 100) -> list[GateResult]:
    """One result per split: recall@k of the encoder's items and the tower's, the same queries and funnel."""
    from service.catalogue import load_catalogue
    from training.data import labelled_pairs, split_frame
    from training.evaluate.embeddings import EmbeddingSet
    from training.evaluate.retrieval import funnel_recall
    from training.first_phase.embed import encode_texts, full_width_encoder

    catalogue = load_catalogue(settings.data_dir)
    row = {t: i for i, t in enumerate(titles)}
    items = [row[t] for t in catalogue.item_titles]
    cos = np.einsum("ij,ij->i", encoder_vectors, tower_vectors)
    pairs = labelled_pairs(settings.data_dir)
    encoder = full_width_encoder(settings)
    results = []
    for split in splits:
        frame = split_frame(pairs, split)
        queries = sorted(frame["query"].unique())
        by_text = encode_texts(encoder, queries, kind="query")
        query_vectors = np.stack([by_text[q] for q in queries])
        recalls = []
        for vectors in (encoder_vectors, tower_vectors):
            embeddings = EmbeddingSet(split, queries, query_vectors, catalogue.item_ids, vectors[items])
            recalls.append(funnel_recall(embeddings, frame, shortlist_dim=settings.funnel_dim or 384,
                                         shortlist_factor=settings.index_shortlist_factor,
                                         full_precision=settings.index_full_precision, k=k))
        results.append(GateResult(split, k, recalls[0], recalls[1], float(cos.mean()), float(cos.min())))
    return results
