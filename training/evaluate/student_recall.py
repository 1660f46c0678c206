"""``shoprank eval-retrieval``: catalogue recall@k of a student's exact items at each Matryoshka cut, and
through the served funnel (``SHOPRANK_INDEX_SHORTLIST_DIM`` / ``_FACTOR``, ``service/index/funnel.py``).

The quick check between training runs (``validation`` to choose between students, ``test`` to report).
An optional energy-ordered rotation (``training/evaluate/rotation.py``) is FITTED on train queries and the
catalogue only, so no query of the evaluated split shapes it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from service.settings import Settings
from training.names import MATRYOSHKA_DIMS


def student_recall_lines(settings: Settings, student: Path, *, split: str = "validation",
                         dims: tuple[int, ...] = MATRYOSHKA_DIMS, k: int = 100, rotation: bool = False,
                         funnel: bool = True) -> list[str]:
    """One line per cut (per variant), then the funnel's line when the served funnel is on."""
    from service.catalogue import load_catalogue
    from training.data import labelled_pairs, split_frame
    from training.evaluate.embeddings import student_embeddings
    from training.evaluate.retrieval import funnel_recall, recall_by_dim
    from training.evaluate.rotation import energy_rotation

    pairs = labelled_pairs(settings.data_dir)
    frame = split_frame(pairs, split)
    catalogue = load_catalogue(settings.data_dir)
    queries = sorted(frame["query"].unique())
    train_queries = sorted(split_frame(pairs, "train")["query"].unique()) if rotation else []
    embeddings = student_embeddings(student, queries=queries + train_queries, item_ids=catalogue.item_ids,
                                    item_titles=catalogue.item_titles)
    train_query_vectors = embeddings.query_vectors[len(queries):]
    embeddings = replace(embeddings, queries=queries, query_vectors=embeddings.query_vectors[: len(queries)])
    cuts = list(dims)
    variants = {"": embeddings}
    if rotation:  # fitted on train queries and the catalogue: no query of the evaluated split
        turn = energy_rotation(np.vstack([train_query_vectors, embeddings.item_vectors]))
        variants[" rotated"] = replace(embeddings, query_vectors=embeddings.query_vectors @ turn,
                                       item_vectors=embeddings.item_vectors @ turn)
    lines = []
    for label, variant in variants.items():
        recall = recall_by_dim(variant, frame, dims=cuts, k=k)
        lines += [f"{student.name}{label} {split} recall@{k} {d}-d {recall[d]:.4f} "
                  f"({recall[d] / recall[cuts[0]]:.1%} of {cuts[0]}-d)" for d in cuts]
        if funnel and settings.funnel_dim and label == "":
            short, factor, precision = settings.funnel_dim, settings.index_shortlist_factor, settings.index_full_precision
            got = funnel_recall(variant, frame, shortlist_dim=short, shortlist_factor=factor, full_precision=precision,
                                k=k)
            lines.append(f"{student.name} {split} recall@{k} funnel {short}-d x{factor} -> "
                         f"{variant.item_vectors.shape[1]}-d ({precision}) {got:.4f} "
                         f"({got / recall[cuts[0]]:.1%} of {cuts[0]}-d)")
    return lines
