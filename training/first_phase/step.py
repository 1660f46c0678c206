"""``shoprank train first-phase`` and the recipe's first-phase step: pairs → ranker logits → vectors → MLP → ONNX.

Everything is read from and scored by the SERVED models of ``settings.model_repo`` (the encoder whose
vectors the service will feed it, the ranker it imitates), so the first phase is distilled from exactly
what runs. Intermediate files live in ``work_dir`` and are reused when they match (the ranker's scores are
the slow part: ~4 ms a pair on 2 cores): ``ranker_scores_train.npz``, ``ranker_scores_validation.npz``,
``ranker_scores_train_retrieved.npz`` and ``embeddings.npz``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from training.first_phase.train import FirstPhaseConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirstPhaseRun:
    """Sizes of one first-phase run; ``retrieved_k`` = 0 trains on the labelled pairs alone."""

    model: FirstPhaseConfig = field(default_factory=FirstPhaseConfig)
    # further configurations fitted on the same pairs; the one closest to the ranker on validation is exported
    alternatives: tuple[FirstPhaseConfig, ...] = ()
    retrieved_k: int = 0  # each train query's top-k catalogue titles by the served encoder, scored by the ranker
    retrieved_max_pairs: int | None = 40_000
    max_train_pairs: int | None = None  # cap the labelled train pairs (the recipe's quick preset)
    max_validation_pairs: int | None = None
    validation_derived_rows: int = 2_000  # item_item and query_query validation pairs (each, at most)
    # ranker scores of train pairs computed earlier (``targets.save_scores``), used as they are instead of
    # scoring every train pair: a subset is fine, a pair whose query is not in the train split is refused
    train_scores: Path | None = None
    parity_rows: int = 256
    seed: int = 13


def load_vector_cache(path: Path) -> dict:
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as data:
        return {kind: dict(zip(data[f"{kind}_texts"].tolist(), data[f"{kind}_vectors"]))
                for kind in ("query", "item") if f"{kind}_texts" in data.files}


def save_vector_cache(path: Path, cache: dict, *, encoder: str) -> None:
    import os

    arrays = {"encoder": np.array(encoder)}
    for kind, vectors in cache.items():
        texts = sorted(vectors)
        arrays[f"{kind}_texts"] = np.array(texts, dtype=str)
        arrays[f"{kind}_vectors"] = np.stack([vectors[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _cache_for(path: Path, encoder: str) -> dict:
    """The vector cache when it was made by this encoder version, else empty."""
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            if str(data["encoder"]) != encoder:
                return {}
    return load_vector_cache(path)


@dataclass
class Prepared:
    """Everything a fit needs: the served models, the ranker's tasks, and both splits' pairs as tensors."""

    encoder: object
    ranker: object
    tasks: tuple[str, ...]
    train: object  # PairSet
    validation: object  # PairSet
    seconds: float


def _given_train_scores(path: Path, ranker: str) -> pd.DataFrame:
    """Scored train pairs from ``path``, checked: scored by the served ranker, every query side a train query."""
    from training.data import split_of
    from training.first_phase.targets import load_scores

    frame = load_scores(path)
    if frame.attrs["ranker"] not in (None, ranker):
        raise ValueError(f"{path} was scored by {frame.attrs['ranker']}, the served ranker is {ranker}")
    queries = pd.concat([frame.loc[frame["task"] != "item_item", "left"],
                         frame.loc[frame["task"] == "query_query", "right"]])
    leaked = sorted({q for q in queries if split_of(q) != "train"})
    if leaked:
        raise ValueError(f"{path} holds pairs of {len(leaked)} non-train queries, e.g. {leaked[:3]}")
    log.info("first phase: %d train pairs scored by %s from %s", len(frame), ranker, path)
    return frame


def prepare(*, settings, work_dir: Path, run: FirstPhaseRun) -> Prepared:
    """Pairs of both splits, scored by the served ranker and embedded by the served encoder (cached in work_dir)."""
    from service.catalogue import load_catalogue
    from training.data import labelled_pairs, sample_rows, split_frame
    from training.first_phase.embed import full_width_encoder, int8_roundtrip, pair_vectors
    from training.first_phase.pairs import labelled_task_pairs, retrieved_pairs
    from training.first_phase.targets import scored, served_logit_scorer
    from training.first_phase.train import PairSet
    from training.names import TASKS

    started = time.time()
    work_dir.mkdir(parents=True, exist_ok=True)
    encoder = full_width_encoder(settings)
    ranker = served_logit_scorer(settings)
    tasks = tuple(ranker.card.get("tasks", ["query_item"]))
    if tasks != TASKS[: len(tasks)]:  # task_id must index the ranker card's tasks, as the ranker's does
        raise ValueError(f"the served ranker's tasks {list(tasks)} are not a prefix of {list(TASKS)}")

    pairs = labelled_pairs(settings.data_dir)
    train_pairs = split_frame(pairs, "train")
    train = sample_rows(labelled_task_pairs(train_pairs, tasks=tasks), run.max_train_pairs, seed=run.seed)
    validation = sample_rows(labelled_task_pairs(split_frame(pairs, "validation"), tasks=tasks,
                                                 derived_max_rows=run.validation_derived_rows),
                             run.max_validation_pairs, seed=run.seed)
    if run.train_scores is not None:
        train = _given_train_scores(run.train_scores, ranker.model_version)
    else:
        train = scored(ranker, train, work_dir / "ranker_scores_train.npz")
    validation = scored(ranker, validation, work_dir / "ranker_scores_validation.npz")

    cache_path = work_dir / "embeddings.npz"
    cache = _cache_for(cache_path, encoder.model_version)
    if run.retrieved_k > 0:
        catalogue = load_catalogue(settings.data_dir)
        titles = sorted(set(catalogue.item_titles))
        queries = sorted(set(train_pairs["query"]))
        probe = pd.DataFrame({"task": "query_item", "left": queries[:1] * len(titles), "right": titles})
        pair_vectors(encoder, probe, cache=cache)  # every catalogue title, once
        probe = pd.DataFrame({"task": "query_item", "left": queries, "right": titles[:1] * len(queries)})
        pair_vectors(encoder, probe, cache=cache)
        save_vector_cache(cache_path, cache, encoder=encoder.model_version)
        retrieved = retrieved_pairs(queries, np.stack([cache["query"][q] for q in queries]), titles,
                                    np.stack([cache["item"][t] for t in titles]), k=run.retrieved_k,
                                    exclude=train[train["task"] == "query_item"], max_pairs=run.retrieved_max_pairs,
                                    seed=run.seed)
        retrieved = scored(ranker, retrieved, work_dir / "ranker_scores_train_retrieved.npz")
        train = pd.concat([train, retrieved], ignore_index=True)

    train_left, train_right = pair_vectors(encoder, train, cache=cache)
    val_left, val_right = pair_vectors(encoder, validation, cache=cache)
    save_vector_cache(cache_path, cache, encoder=encoder.model_version)
    return Prepared(encoder, ranker, tasks,
                    PairSet(train, train_left, train_right, int8_roundtrip(train_left), int8_roundtrip(train_right)),
                    PairSet(validation, val_left, val_right), time.time() - started)


def validation_figures(model, prepared: Prepared) -> dict:
    """Fidelity to the ranker on validation (also with int8-stored items), and both against the human labels."""
    from training.first_phase.embed import int8_roundtrip
    from training.first_phase.evaluate import human_figures
    from training.first_phase.train import fidelity, predict
    from training.names import TASKS

    val = prepared.validation
    cuts = prepared.ranker.card.get("calibration", {}).get("label_cuts")
    rel, eng = predict(model, val.left, val.right, val.task_id)
    qi = (val.task_id == 0) & val.frame["relevance"].notna().to_numpy()
    item_right = (val.task_id != TASKS.index("query_query"))[:, None]
    val_int8 = predict(model, val.left, np.where(item_right, int8_roundtrip(val.right), val.right), val.task_id)
    queries, relevance = val.frame["left"][qi], val.frame["relevance"][qi].to_numpy()
    return {
        "fidelity": fidelity(val, rel, eng),
        "fidelity_int8_items": {k: v for k, v in fidelity(val, *val_int8).items() if k in ("pearson", "spearman")},
        "query_item_human": human_figures(queries, relevance, rel[qi], label_cuts=cuts),
        "ranker_query_item_human": human_figures(queries, relevance, val.relevance_logits[qi], label_cuts=cuts),
    }


def train_first_phase(*, settings, work_dir: Path, repo: Path, version: int = 1,
                      run: FirstPhaseRun = FirstPhaseRun()) -> dict:
    """Build, fit and export the first phase; returns its card (also written into ``repo``)."""
    from training.first_phase.export import write_version
    from training.first_phase.train import fit_first_phase

    started = time.time()
    prepared = prepare(settings=settings, work_dir=work_dir, run=run)
    train, ranker = prepared.train, prepared.ranker
    fits = []
    for config in (run.model, *run.alternatives):
        model, figures = fit_first_phase(train, prepared.validation, config)
        fits.append((model, figures, validation_figures(model, prepared)))
    # chosen on validation: the closest expected relevance to the ranker's (Pearson over all tasks)
    model, figures, validation = max(fits, key=lambda fit: fit[2]["fidelity"]["pearson"])
    selection = [{"config": f["config"], "epochs_run": f["epochs_run"], "train_seconds": f["train_seconds"],
                  "validation_pearson": round(v["fidelity"]["pearson"], 4),
                  "validation_ndcg10": round(v["query_item_human"]["ndcg10"], 4)} for _, f, v in fits]
    log.info("first phase validation: %s", json.dumps(validation))
    card = {
        "kind": "first_phase",
        "tasks": list(prepared.tasks),
        "dim": int(train.left.shape[1]),
        "encoder": prepared.encoder.vector_space,  # the space its vectors are in (an item tower's too)
        "ranker": ranker.model_version,
        "inputs": {"query_embedding": "served encoder, kind='query' (query_item, query_query) or kind='item' "
                                      "(item_item left), full width, L2-normalised",
                   "item_embedding": "served encoder, kind='item' (query_item, item_item) or kind='query' "
                                     "(query_query right); int8 full-vector store round trips are fine",
                   "task_id": "index into tasks"},
        "calibration": {
            "label_cuts": ranker.card.get("calibration", {}).get("label_cuts"),
            "label_cuts_method": f"copied from {ranker.model_version}'s card (the first phase imitates its scale)",
            **({"engagement": ranker.card["calibration"]["engagement"]}
               if "engagement" in ranker.card.get("calibration", {}) else {}),
        },
        "training": {
            "pairs": len(train.frame), "pairs_by_task": train.frame["task"].value_counts().to_dict(),
            "pairs_by_source": train.frame["source"].value_counts().to_dict(), "retrieved_k": run.retrieved_k,
            "epochs_run": figures["epochs_run"], "train_seconds": figures["train_seconds"],
            "seconds_total": round(time.time() - started, 1), "config": figures["config"],
            "teacher": f"{ranker.model_version} logits (served precision)",
            **({"selection": selection} if len(selection) > 1 else {}),
        },
        "validation": _rounded(validation),
    }
    val = prepared.validation
    rows = np.random.default_rng(run.seed).choice(len(val.left), size=min(run.parity_rows, len(val.left)), replace=False)
    version_dir = write_version(model=model, repo=repo, version=version, card=card, name=settings.first_phase_model,
                                parity_rows=(val.left[rows], val.right[rows], val.task_id[rows]))
    (work_dir / "history.json").write_text(json.dumps(figures["history"], indent=1))
    log.info("first phase exported to %s in %.1f min", version_dir, (time.time() - started) / 60)
    return json.loads((version_dir / "shoprank.json").read_text())


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 4) if isinstance(value, float) else value
