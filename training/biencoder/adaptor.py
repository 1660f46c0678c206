"""A linear adaptor on a trained student, fitted against the whole catalogue (a supervised Matryoshka-Adaptor).

Why: the student learns with in-batch negatives (63 per query at batch 64), but retrieval ranks a query
against every product. With the student frozen, the vectors of the train queries and of the catalogue fit
in memory, so a d×d linear map can be fitted with a softmax over ALL catalogue items at each Matryoshka
cut, which is the retrieval objective itself (Yoon et al. 2024, "Matryoshka-Adaptor", supervised variant).

The map is stored as a sentence-transformers ``Dense`` module (no bias, identity activation) between the
pooling and the normalisation, so the adapted student is still a plain sentence-transformers directory,
and ``training.export.onnx_export`` folds the map into the encoder graph. Queries and items share it, as
they share the tower. Written by hand because sentence-transformers' losses train the whole network on
in-batch negatives; none of the field libraries fits a projection against a fixed corpus.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from training.names import MATRYOSHKA_DIMS, STUDENT_CARD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdaptorConfig:
    dims: tuple[int, ...] = MATRYOSHKA_DIMS  # Matryoshka cuts of the adapted vectors, each with a softmax
    weights: tuple[float, ...] = (1.0, 1.0, 1.0, 4.0)  # the 64-d cut lags most, so it weighs most
    min_label: int = 1  # a train pair labelled partial (1) or exact (2) is a positive
    epochs: int = 5
    lr: float = 1e-3
    batch_queries: int = 256
    initial_scale: float = 20.0  # softmax temperature⁻¹ (learnt), sentence-transformers' MNRL default
    catalogue_sample: int | None = None  # None: every product is a negative; a number: a fixed random subset
    max_queries: int | None = None  # None: every train query; a number: a seeded sample (the quick preset)
    seed: int = 13
    threads: int = 2


@dataclass
class AdaptorFit:
    """The learnt map (``vectors @ matrix``) and what the fit did, for the student card."""

    matrix: np.ndarray
    epoch_losses: list[float]
    scale: float
    seconds: float


def matryoshka_softmax_loss(query_vectors: torch.Tensor, item_vectors: torch.Tensor, query_rows: torch.Tensor,
                            item_rows: torch.Tensor, *, dims: Sequence[int], weights: Sequence[float],
                            scale: torch.Tensor) -> torch.Tensor:
    """Σ_d w_d · mean over (query, positive) pairs of −log softmax over every item, at the first d dims.

    ``query_rows[j]`` / ``item_rows[j]`` index the j-th positive pair into the two matrices; a query's
    other positives stay in its denominator, as in a multi-positive InfoNCE."""
    loss = query_vectors.new_zeros(())
    for dim, weight in zip(dims, weights):
        queries = torch.nn.functional.normalize(query_vectors[:, :dim], dim=-1)
        items = torch.nn.functional.normalize(item_vectors[:, :dim], dim=-1)
        logits = scale * queries @ items.T
        log_norm = torch.logsumexp(logits, dim=1)
        loss = loss + weight * (log_norm[query_rows] - logits[query_rows, item_rows]).mean()
    return loss


def fit_adaptor(query_vectors: np.ndarray, item_vectors: np.ndarray, positives: Sequence[Sequence[int]],
                config: AdaptorConfig, *, on_epoch: Callable[[int, np.ndarray], None] | None = None) -> AdaptorFit:
    """Fit W (identity at the start) so that ``normalize(q @ W)[:d]`` ranks ``positives[i]`` first among all items.

    ``positives[i]`` lists the item rows relevant to query row i; queries without one are skipped.
    ``on_epoch(epoch, W)`` lets a caller measure the map as it goes (``shoprank train adaptor`` logs
    validation recall with it)."""
    if len(config.dims) != len(config.weights):
        raise ValueError(f"{len(config.dims)} Matryoshka cuts but {len(config.weights)} weights")
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    queries = torch.from_numpy(np.ascontiguousarray(query_vectors, dtype=np.float32))
    items = torch.from_numpy(np.ascontiguousarray(item_vectors, dtype=np.float32))
    width = queries.shape[1]
    if max(config.dims) > width:
        raise ValueError(f"Matryoshka cut {max(config.dims)} is wider than the {width}-d vectors")
    trainable = [i for i, rows in enumerate(positives) if len(rows)]
    if not trainable:
        raise ValueError("no query has a positive item")
    matrix = torch.nn.Parameter(torch.eye(width))
    log_scale = torch.nn.Parameter(torch.tensor(float(np.log(config.initial_scale))))
    optimiser = torch.optim.Adam([matrix, log_scale], lr=config.lr)
    started, losses = time.time(), []
    for epoch in range(config.epochs):
        order = rng.permutation(trainable)
        total = 0.0
        for start in range(0, len(order), config.batch_queries):
            batch = order[start:start + config.batch_queries]
            pairs = [(b, item) for b, q in enumerate(batch) for item in positives[q]]
            query_rows = torch.tensor([b for b, _ in pairs])
            item_rows = torch.tensor([item for _, item in pairs])
            loss = matryoshka_softmax_loss(queries[torch.from_numpy(batch)] @ matrix, items @ matrix, query_rows,
                                           item_rows, dims=config.dims, weights=config.weights,
                                           scale=log_scale.exp())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        losses.append(round(total / len(order), 4))
        log.info("adaptor epoch %d: loss %.4f, scale %.1f", epoch + 1, losses[-1], log_scale.exp().item())
        if on_epoch is not None:
            on_epoch(epoch + 1, matrix.detach().numpy().copy())
    return AdaptorFit(matrix.detach().numpy().copy(), losses, round(log_scale.exp().item(), 3),
                      round(time.time() - started, 1))


def positive_rows(pairs: pd.DataFrame, queries: Sequence[str], item_ids: Sequence[str], *,
                  min_label: int) -> list[list[int]]:
    """For each query, the catalogue rows of the items it is paired with at ``min_label`` or above."""
    item_row = {item: i for i, item in enumerate(item_ids)}
    kept = pairs[(pairs["label"] >= min_label) & pairs["item_id"].isin(item_row)]
    by_query = {q: sorted({item_row[i] for i in group["item_id"]}) for q, group in kept.groupby("query")}
    return [by_query.get(q, []) for q in queries]


def save_adapted_student(student_dir: Path, out_dir: Path, fit: AdaptorFit, card: dict) -> Path:
    """Copy the student with the map inserted as a Dense module before its Normalize; extend its card."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    student = SentenceTransformer(str(student_dir), device="cpu")
    modules = list(student.children())
    if any(isinstance(m, Dense) for m in modules):
        raise ValueError(f"{student_dir} already has a Dense module; adapt the plain student instead")
    if not isinstance(modules[-1], Normalize):
        raise TypeError(f"{student_dir} does not end with Normalize; the adaptor goes just before it")
    width = fit.matrix.shape[0]
    dense = Dense(width, fit.matrix.shape[1], bias=False, activation_function=torch.nn.Identity(),
                  init_weight=torch.from_numpy(fit.matrix.T.copy()))  # Linear stores [out, in]
    adapted = SentenceTransformer(modules=[*modules[:-1], dense, modules[-1]], device="cpu")
    adapted.max_seq_length = student.max_seq_length
    if out_dir.exists():
        shutil.rmtree(out_dir)
    adapted.save(str(out_dir))
    meta = json.loads((student_dir / STUDENT_CARD).read_text()) if (student_dir / STUDENT_CARD).exists() else {}
    (out_dir / STUDENT_CARD).write_text(json.dumps(meta | {"adaptor": card}, indent=2, default=str))
    return out_dir


def adapt_student(*, student_dir: Path, out_dir: Path, pairs: pd.DataFrame, item_ids: list[str],
                  item_titles: list[str], config: AdaptorConfig, validation: pd.DataFrame | None = None) -> Path:
    """Encode ``pairs``' queries and the catalogue with the student, fit the adaptor, save the adapted student.

    ``pairs`` are train-split rows (``query``, ``item_id``, ``label``); the catalogue items are the
    softmax's negatives (all of them, or ``config.catalogue_sample`` plus every positive; the quick preset
    also samples ``config.max_queries`` queries). With
    ``validation`` rows, the catalogue recall@100 of their exact items is logged after every epoch and
    recorded in the card: how the preset's epoch count was chosen, never used to pick the saved map."""
    from dataclasses import replace

    from training.evaluate.embeddings import student_embeddings
    from training.evaluate.retrieval import recall_by_dim

    if config.max_queries is not None:
        distinct = pairs["query"].drop_duplicates()
        chosen = set(distinct.sample(n=min(config.max_queries, len(distinct)), random_state=config.seed))
        pairs = pairs[pairs["query"].isin(chosen)]
    if config.catalogue_sample is not None and config.catalogue_sample < len(item_ids):
        wanted = set(pairs.loc[pairs["label"] >= config.min_label, "item_id"])
        rng = np.random.default_rng(config.seed)
        keep = set(rng.choice(len(item_ids), size=config.catalogue_sample, replace=False).tolist())
        rows = [i for i, item in enumerate(item_ids) if i in keep or item in wanted]
        item_ids, item_titles = [item_ids[i] for i in rows], [item_titles[i] for i in rows]
    queries = sorted(pairs["query"].unique())
    held_out = sorted(validation["query"].unique()) if validation is not None else []
    vectors = student_embeddings(student_dir, queries=queries + held_out, item_ids=item_ids, item_titles=item_titles,
                                 threads=config.threads)
    positives = positive_rows(pairs, queries, item_ids, min_label=config.min_label)
    history: list[dict] = []

    def measure(epoch: int, matrix: np.ndarray) -> None:
        mapped = replace(vectors, queries=held_out, query_vectors=vectors.query_vectors[len(queries):] @ matrix,
                         item_vectors=vectors.item_vectors @ matrix)
        recall = recall_by_dim(mapped, validation, dims=config.dims)
        history.append({"epoch": epoch} | {f"recall@100_{d}": round(r, 4) for d, r in recall.items()})
        log.info("adaptor epoch %d: validation recall@100 %s", epoch,
                 ", ".join(f"{d}-d {r:.4f}" for d, r in recall.items()))

    if validation is not None:
        measure(0, np.eye(vectors.query_vectors.shape[1], dtype=np.float32))
    fit = fit_adaptor(vectors.query_vectors[: len(queries)], vectors.item_vectors, positives, config,
                      on_epoch=measure if validation is not None else None)
    card = asdict(config) | {
        "queries": sum(1 for p in positives if p), "positive_pairs": sum(len(p) for p in positives),
        "negatives": len(item_ids), "epoch_losses": fit.epoch_losses, "scale": fit.scale,
        "train_seconds": fit.seconds, "validation": history,
        "note": "linear map before Normalize, fitted with a softmax over the catalogue (training/biencoder/adaptor.py)"}
    return save_adapted_student(student_dir, out_dir, fit, card)
