"""What the report's sections share: its configuration, the loaded split and models, the one-off encodings, the timings."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from service.catalogue import load_catalogue
from service.inference.factory import make_backend, make_encoder, make_pair_scorer
from service.settings import Settings
from training.base_model import base_model_path
from training.data import labelled_pairs, split_frame
from training.evaluate.embeddings import EmbeddingSet, served_embeddings, student_embeddings
from training.names import MATRYOSHKA_DIMS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportConfig:
    out_dir: Path
    command: str
    student: Path | None = None
    split: str = "test"
    artifacts: Path = Path("artifacts")
    dims: tuple[int, ...] = MATRYOSHKA_DIMS
    recall_k: int = 100
    keyphrase_items: int = 300
    keyphrase_k: int = 20
    seed: int = 2016
    sweep_points: int = 11
    ranx_check: bool = True
    catalogue_limit: int | None = None  # smoke runs only: corpus = first N products ∪ the split's items
    query_limit: int | None = None  # smoke runs only: the split's first N queries (sorted)


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def section(self, name: str):
        log.info("── %s …", name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - started
            log.info("── %s done in %.1f s", name, self.seconds[name])


@dataclass
class Context:
    """What every section reads: the split's pairs, the catalogue, the models and the shared encodings."""

    settings: Settings
    config: ReportConfig
    pairs: pd.DataFrame
    frame: pd.DataFrame
    catalogue: object  # service.catalogue.Catalogue, loaded once (BM25 reads it, the corpus lists come from it)
    catalogue_ids: list[str]
    catalogue_titles: list[str]
    keyphrases: list[str]
    backend: object
    encoder: object
    scorer: object
    zero_shot: EmbeddingSet | None = None
    student: EmbeddingSet | None = None
    student_note: str = ""
    figures: dict = field(default_factory=dict)  # what each section measured, for ReportResult (no section reads it)


@dataclass(frozen=True)
class ScoredSplit:
    """The split's pairs with the scores several sections read, computed once and passed to them explicitly."""

    frame: pd.DataFrame  # the context's frame + ``random``, ``bm25`` and ``ranker`` (expected relevance) columns
    heads: object  # the served ranker's PairHeads on those query_item pairs


def score_split(ctx: Context) -> ScoredSplit:
    """Baselines (random, BM25) and the served ranker on the split's pairs, on a copy of the context's frame."""
    from training.evaluate.ranking_report import add_baselines
    from training.evaluate.task_eval import score_in_chunks

    frame = ctx.frame.copy()
    add_baselines(frame, ctx.catalogue)
    heads = score_in_chunks(ctx.scorer, frame["query"].tolist(), frame["title"].tolist(), task="query_item")
    frame["ranker"] = heads.relevance.expected
    return ScoredSplit(frame, heads)


def load_context(settings: Settings, config: ReportConfig) -> Context:
    pairs = labelled_pairs(settings.data_dir)
    frame = split_frame(pairs, config.split)
    if config.query_limit:
        keep = sorted(frame["query"].unique())[: config.query_limit]
        frame = frame[frame["query"].isin(keep)].reset_index(drop=True)
    catalogue = load_catalogue(settings.data_dir)
    ids, titles = catalogue.item_ids, catalogue.item_titles
    if config.catalogue_limit:
        wanted = set(ids[: config.catalogue_limit]) | set(frame["item_id"])
        ids, titles = zip(*[(i, t) for i, t in zip(ids, titles) if i in wanted])
    backend = make_backend(settings)
    return Context(settings, config, pairs, frame, catalogue, list(ids), list(titles), catalogue.keyphrases, backend,
                   make_encoder(backend, settings), make_pair_scorer(backend, settings))


def encode_shared(ctx: Context, timings: Timings) -> None:
    queries = sorted(ctx.frame["query"].unique())
    with timings.section("encode: served encoder (queries + catalogue)"):
        if ctx.encoder.zero_shot:
            ctx.zero_shot = served_embeddings(ctx.encoder, queries=queries, item_ids=ctx.catalogue_ids,
                                              item_titles=ctx.catalogue_titles)
        else:  # a trained student is served: the baseline is the base model itself (sentence-transformers, fp32)
            ctx.zero_shot = student_embeddings(Path(base_model_path()), queries=queries, item_ids=ctx.catalogue_ids,
                                               item_titles=ctx.catalogue_titles, name="zero-shot (base, fp32)")
    path = ctx.config.student
    if path is None:
        ctx.student_note = "not trained (no --student given)"
    elif not (path / "modules.json").exists():
        ctx.student_note = f"not trained ({path} absent)"
    else:
        with timings.section("encode: student (queries + catalogue)"):
            ctx.student = student_embeddings(path, queries=queries, item_ids=ctx.catalogue_ids,
                                             item_titles=ctx.catalogue_titles)
