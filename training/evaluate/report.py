"""``shoprank eval --report DIR``: the full held-out report, ``DIR/report.md`` + ``DIR/*.png``.

Every figure is measured on one split (the held-out test split unless ``--split`` says otherwise);
nothing is tuned here: the relevance floor, label rule and weights are the served ones. The
expensive parts run once and are shared by the sections: the served encoder and the student encode
the split's queries and the whole catalogue at full width (Matryoshka cuts are taken from those),
and the ranker scores each task's pairs once. Each section logs and records its wall time.

Sections: 1 headline table, 2 ranker per task, 3 catalogue recall by dimension, 4 student–ranker
agreement, 5 student ablations (KD loss, training signals), 6 production-style keyphrases,
7 relevance–engagement trade-off, 8 plots, 9 what the report does not contain yet. The work of each lives in its own module of ``training/evaluate/``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from service.catalogue import load_catalogue
from service.inference.factory import make_backend, make_encoder, make_pair_scorer
from service.ranking.engagement_prior import engagement_priors, with_priors
from service.ranking.value_model import value_scores
from service.settings import Settings
from training.base_model import base_model_path
from training.data import labelled_pairs, split_frame
from training.engagement import ClickModel, split_engagement
from training.evaluate import inventory, plots
from training.evaluate.ablation import pair_figures, student_figures
from training.evaluate.embeddings import EmbeddingSet, served_embeddings, student_card, student_embeddings
from training.evaluate.keyphrase_eval import evaluate_keyphrases, keyphrase_runtime, sample_items
from training.evaluate.metrics import ndcg_at_k, pearson_r
from training.evaluate.ranker_compare import compare_rankers, ranker_artifacts
from training.evaluate.ranking_report import Row, add_baselines, ranker_row, train_mean_row
from training.evaluate.retrieval import catalogue_recall, exact_items_by_query, funnel_recall, ranx_recall
from training.evaluate.task_eval import TASKS, score_in_chunks, task_figures, task_rows
from training.evaluate.tradeoff import engagement_share, reference_point, sweep

log = logging.getLogger(__name__)

# data/README.md: zero-shot recall@100 of exact items over the catalogue on the test split
REFERENCE_ZERO_SHOT_RECALL = {384: 0.689, 64: 0.511}


@dataclass(frozen=True)
class ReportConfig:
    out_dir: Path
    command: str
    student: Path | None = None
    split: str = "test"
    artifacts: Path = Path("artifacts")
    dims: tuple[int, ...] = (384, 256, 128, 64)
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


def _f(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


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
    heads: object = None
    pair_figures: dict = field(default_factory=dict)  # encoder name → dim → NDCG@10 and Pearson r (section 4)
    headline: list[Row] = field(default_factory=list)
    figures: dict = field(default_factory=dict)


def _load(settings: Settings, config: ReportConfig) -> Context:
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


def _encode(ctx: Context, timings: Timings) -> None:
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


# --- 1 -------------------------------------------------------------------------------------------

def section_headline(ctx: Context) -> str:
    frame, settings, dims = ctx.frame, ctx.settings, ctx.config.dims
    train_mean = float(split_frame(ctx.pairs, "train")["relevance"].mean())
    add_baselines(frame, ctx.catalogue)
    ctx.heads = score_in_chunks(ctx.scorer, frame["query"].tolist(), frame["title"].tolist(), task="query_item")
    frame["ranker"] = ctx.heads.relevance.expected
    rows = [Row("random order", ndcg_at_k(frame, "random")), train_mean_row(frame, train_mean),
            Row("BM25 (bm25s)", ndcg_at_k(frame, "bm25"))]
    notes = {}
    for d in (dims[0], dims[-1]):
        frame[f"zero_shot_{d}"] = ctx.zero_shot.pair_cosines(frame["query"], frame["item_id"], d)
        served = " (served)" if d == settings.embedding_dim else ""
        rows.append(Row(f"{ctx.zero_shot.name}, {d}-d{served if ctx.encoder.zero_shot else ''}",
                        ndcg_at_k(frame, f"zero_shot_{d}")))
    for d in dims:
        name = f"student {ctx.config.student.name if ctx.config.student else ''}, {d}-d".replace(" ,", ",")
        if ctx.student is None:
            rows.append(Row(name, None))
            notes[name] = ctx.student_note
            continue
        frame[f"student_{d}"] = ctx.student.pair_cosines(frame["query"], frame["item_id"], d)
        rows.append(Row(name, ndcg_at_k(frame, f"student_{d}")))
    rows.append(ranker_row(f"**ranker {ctx.scorer.model_version}** (expected relevance)", frame, ctx.heads))
    ctx.headline = rows
    ctx.figures["headline"] = {r.system: r for r in rows}
    n_queries = int((frame.groupby("query").size() >= 2).sum())
    table = _table(["system", "NDCG@10", "RMSE (1–3)", "3-level acc.", "macro-F1"],
                   [[r.system, notes.get(r.system) or _f(r.ndcg10), _f(r.rmse), _f(r.accuracy), _f(r.macro_f1)]
                    for r in rows])
    return (f"## 1. Headline\n\n{len(frame):,} {ctx.config.split} pairs; NDCG@10 over the {n_queries:,} queries with "
            "at least 2 candidates, gain 2^(r−1) − 1 on the human mean r. Encoders score a pair by the cosine of "
            "the query and title embeddings; a d-dim row keeps the first d dimensions of the 384-d embedding "
            "and re-normalises. The ranker's RMSE is its expected rating 1 + E[y] against the human mean; its "
            "3-level label cuts that expected rating at the points calibrated on validation in its model card "
            "(`shoprank calibrate`), or at the data README's rule when the card has none.\n\n" + table + "\n")


# --- 2 -------------------------------------------------------------------------------------------

def section_tasks(ctx: Context) -> str:
    rows_by_task = task_rows(ctx.frame)
    figures = []
    for task in TASKS:
        rows = rows_by_task[task]
        heads = ctx.heads if task == "query_item" else score_in_chunks(
            ctx.scorer, rows["left"].tolist(), rows["right"].tolist(), task=task)
        figures.append(task_figures(task, rows, heads.relevance))
    ctx.figures["tasks"] = figures
    card = ctx.scorer.card
    trained_on = card.get("training", {}).get("tasks", card.get("tasks", []))
    table = _table(["task", "rows", "labels irrelevant / partial / exact", "majority-class share",
                    "3-level acc.", "macro-F1", "RMSE (1–3)"],
                   [[f.task, f"{f.rows:,}", " / ".join(f"{s:.2f}" for s in f.shares), _f(max(f.shares)),
                     _f(f.accuracy), _f(f.macro_f1), _f(f.rmse)] for f in figures])
    served = (f"## 2. Ranker per task\n\nThe three entity-pair tasks built by `training/tasks.py` from the "
              f"{ctx.config.split} split's judgements only (derived tasks uncapped), scored by the served ranker "
              f"with `scorer.score(task=...)`. " + _routing_note(ctx.scorer.model_version, trained_on, card) +
              "The majority-class share is what always answering the most frequent label would score (a "
              "reference, not a system).\n\n" + table + "\n")
    return served + _trained_rankers(ctx, rows_by_task)


def _routing_note(version: str, trained_on: list[str], card: dict) -> str:
    """How the served ranker sees each task: routed as trained, or read as (query, title) when untrained."""
    untrained = [task for task in TASKS if task not in trained_on]
    routing = f"routing `{card.get('routing')}`"
    if not untrained:
        return f"**{version} was trained on all three tasks** ({routing}); each is scored with its own routing. "
    return (f"**{version} was trained on {', '.join(trained_on)} only** ({routing}, no task prefix or task id for "
            f"the other tasks): on {' and '.join(untrained)} it reads the pair as if it were (query, title). ")


def _trained_rankers(ctx: Context, rows_by_task: dict) -> str:
    paths = ranker_artifacts(ctx.config.artifacts)
    if not paths:
        return ""
    figures = compare_rankers(paths, rows_by_task)
    ctx.figures["rankers"] = figures
    rows = [[f"`{f.name}`", f.routing, "+".join(f.tasks), f"{f.train_pairs:,}" if f.train_pairs else "—",
             _f(f.train_seconds / 60, 1) if f.train_seconds else "—", task, _f(t.accuracy), _f(t.macro_f1),
             _f(t.rmse), _f(f.ndcg10) if task == "query_item" else "—"]
            for f in figures for task, t in f.by_task.items()]
    table = _table(["ranker", "routing", "trained on", "train rows", "train min", "task", "3-level acc.",
                    "macro-F1", "RMSE (1–3)", "NDCG@10"], rows)
    single = {f.tasks[0]: f for f in figures if len(f.tasks) == 1}
    gains = []
    for f in figures:
        if len(f.tasks) < 2:
            continue
        for task, t in f.by_task.items():
            if task in single:
                base = single[task].by_task[task]
                gains.append([task, f"{t.rows:,}", f"`{single[task].name}`", f"`{f.name}`",
                              f"{t.accuracy - base.accuracy:+.3f}", f"{t.macro_f1 - base.macro_f1:+.3f}",
                              f"{t.rmse - base.rmse:+.3f}"])
    gain_table = _table(["task", f"{ctx.config.split} rows", "single-task", "multi-task", "Δ acc.", "Δ macro-F1",
                         "Δ RMSE (lower is better)"], gains) if gains else "(no single-task baseline trained)"
    return ("\n### Trained rankers from `artifacts/` (torch fp32, not served)\n\nEvery ranker artifact under "
            f"`{ctx.config.artifacts}/`, scored with `training.cross_encoder.predict.TorchPairScorer` on the tasks it "
            "was trained on (task prefix or task id as trained); the ensemble votes over the routing variants "
            "that share a task set (`training/cross_encoder/ensemble.py`). Train rows and minutes are from "
            "each artifact's config.json.\n\n" + table + "\n\nMulti-task against the single-task baseline "
            "trained the same way on that task alone:\n\n" + gain_table + "\n")


# --- 3 -------------------------------------------------------------------------------------------

def section_retrieval(ctx: Context) -> str:
    k, dims = ctx.config.recall_k, ctx.config.dims
    relevant_by_query = exact_items_by_query(ctx.frame)
    queries = list(relevant_by_query)
    relevant = [relevant_by_query[q] for q in queries]
    systems = [("zero-shot", ctx.zero_shot)] + ([("student", ctx.student)] if ctx.student is not None else [])
    recall: dict[str, dict[int, float]] = {}
    checks = []
    for name, emb in systems:
        recall[name] = {}
        q_rows = [emb.queries.index(q) for q in queries]
        for d in dims:
            per_query, retrieved = catalogue_recall(emb.query_matrix(d)[q_rows], emb.item_matrix(d), emb.item_ids,
                                                    relevant, k=k)
            recall[name][d] = float(per_query.mean())
            if ctx.config.ranx_check and d in (dims[0], dims[-1]):
                checks.append((name, d, recall[name][d], ranx_recall(queries, retrieved, relevant, k=k)))
    ctx.figures["recall"] = recall
    rows = []
    for name in ("zero-shot", "student"):
        if name in recall:
            r = recall[name]
            rows.append([name] + [_f(r[d]) for d in dims] + [_pct(r[dims[-1]] / r[dims[0]])])
        else:
            rows.append([name] + [ctx.student_note] * len(dims) + ["—"])
    table = _table(["model"] + [f"{d}-d" for d in dims] + [f"{dims[-1]}-d as % of {dims[0]}-d"], rows)
    zs = recall["zero-shot"]
    ref = "; ".join(f"{d}-d {zs[d]:.3f} vs {v:.3f} ({zs[d] - v:+.3f})" for d, v in REFERENCE_ZERO_SHOT_RECALL.items()
                    if d in zs)
    check = "; ".join(f"{n} {d}-d numpy {a:.4f} / ranx {b:.4f}" for n, d, a, b in checks) or "not run"
    n_exact = sum(len(r) for r in relevant)
    funnel_line = ""
    if ctx.settings.funnel_dim:
        short, factor = ctx.settings.funnel_dim, ctx.settings.index_shortlist_factor
        served = {name: funnel_recall(emb, ctx.frame, shortlist_dim=short, shortlist_factor=factor, k=k)
                  for name, emb in systems}
        funnel_line = (f"- As served (`service/index/funnel.py`: the ANN index holds the {short}-d cut and its "
                       f"{factor} × k shortlist is rescored at full width): "
                       + "; ".join(f"{name} {v:.3f} ({_pct(v / recall[name][dims[0]])} of {dims[0]}-d)"
                                   for name, v in served.items()) + ".\n")
        ctx.figures["recall_funnel"] = served
    return (f"## 3. Retrieval over the whole catalogue\n\nFor each of the {len(queries):,} distinct "
            f"{ctx.config.split} queries with at least one exact item (label 2: human mean ≥ 2.5; "
            f"{n_exact:,} exact judgements), the query searches all {len(ctx.catalogue_ids):,} products "
            f"(FAISS IndexFlatIP over unit vectors: exact cosine search) and recall@{k} is the share of its "
            f"exact items in the top {k}, averaged over queries.\n\n" + table +
            f"\n\n- Zero-shot against the figures in data/README.md: {ref}.\n"
            + funnel_line +
            f"- Recall computed with numpy, cross-checked with ranx: {check}.\n\n"
            "![recall vs dimension](recall_by_dim.png)\n")


# --- 4 -------------------------------------------------------------------------------------------

def section_agreement(ctx: Context) -> str:
    frame, dims = ctx.frame, (ctx.config.dims[0], ctx.config.dims[-1])
    expected = ctx.heads.relevance.expected
    rows = []
    for name, emb in (("zero-shot", ctx.zero_shot), ("student", ctx.student)):
        if emb is None:
            rows.append([name] + [ctx.student_note] * len(dims))
            continue
        ctx.pair_figures[name] = pair_figures(emb, frame, expected, dims)
        rows.append([name] + [_f(ctx.pair_figures[name][d]["r_ranker"]) for d in dims])
    ctx.figures["agreement"] = {(name, d): by_dim[d]["r_ranker"] for name, by_dim in ctx.pair_figures.items()
                                for d in dims}
    table = _table(["encoder", f"Pearson r at {dims[0]}-d", f"at {dims[-1]}-d"], rows)
    return (f"## 4. Student–ranker agreement\n\nPearson r between the encoder's cosine and the served ranker's "
            f"expected relevance E[y] over the {len(frame):,} {ctx.config.split} query_item pairs (the student "
            "was distilled from this ranker's scores on train pairs).\n\n" + table + "\n")


# --- 5 -------------------------------------------------------------------------------------------

def section_ablations(ctx: Context) -> str:
    cfg, dims = ctx.config, (ctx.config.dims[0], ctx.config.dims[-1])
    students = inventory.scan(cfg.artifacts).students
    if not students:
        return f"## 5. Student ablations\n\nNo student under `{cfg.artifacts}/` (`make students` trains them).\n"
    known = {cfg.student.name: ctx.student} if ctx.student is not None and cfg.student else {}
    figures = student_figures(students, artifacts=cfg.artifacts, frame=ctx.frame,
                              ranker_expected=ctx.heads.relevance.expected, dims=dims, known=known)
    ctx.figures["ablations"] = figures

    def row(name: str, signals: str, kd: str, steps, by_dim) -> list[str]:
        return [name, signals, kd, str(steps if steps is not None else "—")] + [
            _f(by_dim[d][key]) for d in dims for key in ("r_ranker", "r_human", "ndcg10")]

    rows = [row(ctx.zero_shot.name, "—", "—", 0, ctx.pair_figures["zero-shot"])]
    rows += [row(f"`{f.name}`", f.signals, f.kd_loss or "—", f.steps, f.by_dim) for f in figures]
    header = ["student", "trained on", "KD loss", "steps"] + [
        f"{label} {d}-d" for d in dims for label in ("r vs ranker", "r vs human", "NDCG@10")]
    return (f"## 5. Student ablations\n\nThe ablation students are budgeted trials of one preset (`make students`: "
            "`shoprank train student --preset trial`, rows capped per dataset, one capped epoch), so "
            "they differ only in the ablated choice; any other student under `artifacts/` (longer runs) is listed "
            "with its own step count. KD-loss ablation: the rows trained on clicks + labels + KD with MSE, CoSENT "
            "and Pearson distillation (eBay's Table 1b); label ablation: click only / + labels / + KD (its Table 2). "
            f"Over the {len(ctx.frame):,} {cfg.split} query_item pairs: Pearson r of the cosine with the served "
            "ranker's E[y] (what distillation transfers) and with the human mean, and re-ranking NDCG@10. "
            "Catalogue recall is in section 3 for the main student only (encoding every product per student "
            "costs minutes each on 2 cores); threshold F1 is left out (a student has no calibrated threshold, "
            "and fitting one here would tune on the evaluated split).\n\n" + _table(header, rows) + "\n")


# --- 6 -------------------------------------------------------------------------------------------

def section_keyphrases(ctx: Context) -> str:
    cfg = ctx.config
    items = sample_items(ctx.frame["item_id"], n=cfg.keyphrase_items, seed=cfg.seed)
    title_of = dict(zip(ctx.frame["item_id"], ctx.frame["title"]))
    runtime = keyphrase_runtime(ctx.settings, ctx.backend, ctx.encoder, ctx.scorer, ctx.keyphrases)
    result = evaluate_keyphrases(runtime, item_ids=items, titles=[title_of[i] for i in items],
                                 keyphrases=ctx.keyphrases, k=cfg.keyphrase_k)
    s = result.summary()
    ctx.figures["keyphrases"] = s
    plots.count_histogram({"ANN (served encoder) → ranker floor": [len(p) for p in result.passed],
                           "BM25 → ranker floor": [len(p) for p in result.bm25_passed]},
                          cfg.out_dir / "keyphrases_per_item.png", k=cfg.keyphrase_k)
    k = cfg.keyphrase_k
    table = _table(["figure", "value"], [
        ["items (seeded sample of the split's items)", f"{s['items']:,}"],
        [f"ANN candidates (top {k} per item)", f"{s['candidates']:,}"],
        ["ranker floor P(y ≥ partial)", f"{result.floor:.2f}"],
        ["pass rate of the ANN candidates", _pct(s["pass_rate"])],
        ["relevant keyphrases per item: median / mean", f"{s['passed_median']:.1f} / {s['passed_mean']:.2f}"],
        ["items with no keyphrase passing", _pct(s["items_with_none"])],
        [f"BM25 keyphrases returned per item (score > 0, top {k}): median", f"{s['bm25_returned_median']:.1f}"],
        ["pass rate of the BM25 keyphrases (same floor)", _pct(s["bm25_pass_rate"])],
        ["BM25 keyphrases passing per item: median", f"{s['bm25_passed_median']:.1f}"],
        ["**passed ANN keyphrases BM25 did not return**, per item: median / mean",
         f"**{s['additional_median']:.1f}** / {s['additional_mean']:.2f}"],
        ["share of passed ANN keyphrases that BM25 did not return", _pct(s["additional_share"])],
        ["distinct passing keyphrases per item from both sources: median", f"{s['union_passed_median']:.1f}"],
    ])
    examples = []
    for item_id, title, passed, bm25 in list(zip(result.item_ids, result.titles, result.passed, result.bm25))[:3]:
        bm25_set = {b.lower() for b in bm25}
        shown = ", ".join(f"{p}{'' if p.lower() in bm25_set else ' *'}" for p in passed[:8]) or "(none)"
        examples.append(f"- `{item_id}` {title}: {shown}")
    return (f"## 6. Keyphrase recommendation, production style\n\n{s['items']} items drawn (seed {cfg.seed}) from the "
            f"{ctx.config.split} split's items. For each, `service.pipelines.recommend_keyphrases` runs as served: the "
            f"item title through {ctx.encoder.model_version} ({ctx.settings.embedding_dim}-d), the top {k} of the "
            f"keyphrase index over all {len(ctx.keyphrases):,} distinct search terms (the service's corpus), then "
            f"the {ctx.scorer.model_version} relevance filter at the floor in its model card. (The service fetches "
            f"k × {ctx.settings.keyphrase_candidates_factor} candidates to fill k; here the factor is 1 so the pass "
            "rate is over exactly the top k.) The other recall source is BM25 (bm25s, English stopwords) over the "
            "same corpus with the title as the query; a ranker-passed ANN keyphrase is *additional* value only when "
            "BM25's top k did not also hold it.\n\n" + table +
            "\n\nFirst sampled items (passed keyphrases, best first; * = not returned by BM25):\n\n" +
            "\n".join(examples) + "\n\n![keyphrases per item](keyphrases_per_item.png)\n")


# --- 7 -------------------------------------------------------------------------------------------

def section_tradeoff(ctx: Context) -> str:
    cfg, frame, heads = ctx.config, ctx.frame, ctx.heads
    # one simulation over every split, so each product has one popularity (training/engagement.py)
    engagement = split_engagement(ctx.pairs, frame)
    frame["sim_ctr"] = engagement["ctr"].to_numpy()
    frame["sim_conv"] = (engagement["ctr"] * engagement["cvr"]).to_numpy()  # conversions per impression
    popularity = engagement["popularity"].to_numpy()
    prior = engagement_priors(ctx.scorer.card)
    has_prior = bool(prior)
    ctr, cvr = with_priors(ctx.scorer.card, heads.ctr, heads.cvr, popularity)
    points = tuple(np.linspace(0.0, 1.0, cfg.sweep_points))
    text_only = sweep(frame, expected=heads.relevance.expected, ctr=heads.ctr, cvr=heads.cvr, points=points)
    args = {"expected": heads.relevance.expected, "ctr": ctr, "cvr": cvr, "points": points}
    curve = sweep(frame, engagement_column="sim_ctr", **args)
    conv = sweep(frame, engagement_column="sim_conv", **args)
    curve["conv_weighted"] = conv["engagement_weighted"].to_numpy()
    ctx.figures["tradeoff"] = curve
    ctx.figures["tradeoff_text_only"] = text_only
    heads_r = {"CTR head vs simulated CTR": pearson_r(heads.ctr, frame["sim_ctr"]),
               "CTR head vs the ranker's E[y]": pearson_r(heads.ctr, heads.relevance.expected),
               "human relevance vs simulated CTR": pearson_r(frame["relevance"], frame["sim_ctr"])}
    if has_prior:
        heads_r["CTR head + popularity vs simulated CTR"] = pearson_r(ctr, frame["sim_ctr"])
    ctx.figures["ctr_head"] = heads_r
    marks = {}
    for name, weights in ctx.settings.profiles.items():
        w = engagement_share(weights)
        frame[f"profile_{name}"] = value_scores(expected_relevance=heads.relevance.expected, ctr=ctr, cvr=cvr,
                                                weights=weights)
        marks[f"profile '{name}' (w = {w:.2f})"] = reference_point(frame, f"profile_{name}") | {"w": w}
    marks["random order"] = reference_point(frame, "random") | {"w": float("nan")}
    marks["oracle: simulated CTR itself"] = reference_point(frame, "sim_ctr") | {"w": float("nan")}
    decay = ClickModel().position_decay
    plots.tradeoff_curve(curve, cfg.out_dir / "tradeoff.png", engagement_column="engagement_weighted",
                         engagement_label=f"simulated CTR of the top 10, examination-weighted (1/(1+r)^{decay})",
                         marks={k: v for k, v in marks.items() if not k.startswith("profile 'relevance'")},
                         label="heads + item popularity, w = 0 … 1" if has_prior else "value model, w = 0 … 1",
                         baseline=text_only if has_prior else None, baseline_label="text-only heads, w = 0 … 1")
    rows = [[_f(r.w, 1), _f(t.ndcg10, 4), _f(t.engagement_weighted, 4), _f(r.ndcg10, 4), _f(r.engagement_mean, 4),
             _f(r.engagement_weighted, 4), _f(r.conv_weighted, 4)]
            for r, t in zip(curve.itertuples(), text_only.itertuples())]
    table = _table(["engagement weight w", "text-only heads: NDCG@10", "text-only: sim. CTR, weighted",
                    "NDCG@10", "sim. CTR, top-10 mean", "sim. CTR, top-10 weighted",
                    "sim. conversions / impression, weighted"], rows)
    ref_rows = [[name, _f(p["ndcg10"], 4), _f(p["engagement_mean"], 4), _f(p["engagement_weighted"], 4)]
                for name, p in marks.items()]
    ref = _table(["ordering", "NDCG@10", "sim. CTR, top-10 mean", "sim. CTR, top-10 weighted"], ref_rows)
    n = frame.groupby("query").size()
    n = n[n >= 2]  # the queries NDCG@10 and the engagement figures average over
    inputs = ("the served ranker's heads with the item's popularity feature: CTR and CVR recalibrated by "
              "`service/ranking/engagement_prior.py` with the coefficients `shoprank calibrate` fitted on validation "
              f"(CTR: {prior['ctr'].head:.2f}·logit(head) + {prior['ctr'].popularity:.2f}·popularity "
              f"{prior['ctr'].bias:+.2f}). The popularity fed here is the click model's own per-product logit, "
              "i.e. an exact popularity feature, the best case for what a caller's `features.popularity` (e.g. an "
              "item's historical CTR) provides; the text-only columns are the same sweep on the heads alone"
              if has_prior else "the served ranker's heads (its card has no engagement fit, so no popularity)")
    return (f"## 7. Relevance–engagement trade-off\n\nThe {len(frame):,} {ctx.config.split} query_item pairs are "
            "ordered per query by the unified value model (`service/ranking/value_model.py`) with weights "
            f"relevance 1 − w, CTR w/2, CVR w/2, on {inputs}. NDCG@10 is against the human relevance. Engagement "
            "is **SIMULATED**: the click model of `training/engagement.py` run once over every labelled pair "
            "(seed 2016; debiased CTR, the ground truth of the engagement heads), so a product has one popularity "
            f"across splits. {(n <= 10).mean():.0%} of the queries have at most 10 candidates, so the top-10 plain "
            "mean moves little with the order; the weighted columns weigh rank r by the click model's examination "
            f"probability 1/(1+r)^{decay}, and are what the plot shows.\n\n" + table +
            "\n\nReference orderings (named profiles from `service/settings.py`, placed on the w axis by "
            "(w_ctr + w_cvr) / Σw):\n\n" + ref + "\n\nWhat the CTR estimate carries (Pearson r over the same "
            "pairs): " + "; ".join(f"{k} {v:.3f}" for k, v in heads_r.items()) + ". The text-only CTR head mostly "
            "repeats E[y]: the simulated clicks also depend on an item popularity that a cross-encoder reading "
            "the query and the title cannot see, which is what the popularity feature adds.\n\n"
            "![trade-off](tradeoff.png)\n")


# --- 8, 9 ----------------------------------------------------------------------------------------

def section_plots(ctx: Context) -> str:
    out = ctx.config.out_dir
    plots.recall_by_dim(ctx.figures["recall"], out / "recall_by_dim.png", k=ctx.config.recall_k)
    pngs = sorted(p.name for p in out.glob("*.png"))
    return ("## 8. Plots\n\nmatplotlib (Agg), written next to this file: " + ", ".join(f"`{p}`" for p in pngs)
            + ". Each is shown in its section above.\n")


def section_not_yet(ctx: Context) -> str:
    inv = inventory.scan(ctx.config.artifacts,
                         extra_students=(ctx.config.student,) if ctx.config.student else ())
    lines = inventory.missing(inv, served_encoder=ctx.encoder.card.get("source", ctx.encoder.model_version))
    body = "\n".join(f"- {line}" for line in lines) or "- nothing: every comparison of the recipe has its artifacts."
    return ("## 9. What this report does not contain yet\n\nFrom the artifacts found under "
            f"`{ctx.config.artifacts}/` (rankers: {', '.join(inv.rankers) or 'none'}; students: "
            f"{', '.join(inv.students) or 'none'}):\n\n" + body + "\n")


# --- header and assembly -------------------------------------------------------------------------

def _models(ctx: Context) -> str:
    enc, rk = ctx.encoder.card, ctx.scorer.card
    train, cal = rk.get("training", {}), rk.get("calibration", {})
    rows = [
        ["encoder", ctx.encoder.model_version,
         (f"source: {enc.get('source', '?')}; precision {enc.get('precision', '?')}; "
          f"dim {enc.get('dim', '?')}; served cut {ctx.settings.embedding_dim}-d")],
        ["ranker", ctx.scorer.model_version,
         (f"tasks {', '.join(rk.get('tasks', []))}; routing {rk.get('routing')}; precision {rk.get('precision', '?')}; "
          f"{train.get('train_pairs', '?')} train pairs, {train.get('epochs', '?')} epoch(s)"
          f"{' continuing ' + train['init_from'] if train.get('init_from') else ''}, "
          f"{train.get('train_seconds', '?')} s; floor P(y ≥ partial) ≥ {cal.get('min_relevance', '?')} "
          f"({cal.get('method', 'not calibrated')})")],
    ]
    path = ctx.config.student
    if ctx.student is not None:
        card = student_card(path)
        rows.append(["student", str(path),
                     (f"{card.get('base', '?')}; KD loss {card.get('kd_loss')}; {card.get('steps', '?')} steps in "
                      f"{card.get('train_seconds', '?')} s (stopped by time budget: {card.get('stopped_by_time_budget')}); "
                      f"dataset rows {card.get('dataset_rows')}; max_seq_length {card.get('max_seq_length')}; "
                      f"Matryoshka {card.get('matryoshka_dims')} weights {card.get('matryoshka_weights')}"
                      f"{_adaptor_note(card.get('adaptor'))}; torch fp32")])
    else:
        rows.append(["student", str(path) if path else "—", ctx.student_note])
    return _table(["model", "version", "card"], rows)


def _adaptor_note(adaptor: dict | None) -> str:
    """The student card's adaptor step in words (training/biencoder/adaptor.py), or nothing."""
    if not adaptor:
        return ""
    return (f"; + catalogue-softmax adaptor: {adaptor.get('epochs')} epochs, {adaptor.get('queries')} train queries, "
            f"{adaptor.get('negatives')} products, labels ≥ {adaptor.get('min_label')} as positives, "
            f"cut weights {adaptor.get('weights')}")


def _header(ctx: Context, timings: Timings, *, started: dt.datetime, load: float) -> str:
    cfg = ctx.config
    total = sum(timings.seconds.values())
    time_rows = [[name, f"{sec:.1f}"] for name, sec in timings.seconds.items()] + [["**total**", f"**{total:.1f}**"]]
    smoke = ""
    if cfg.catalogue_limit or cfg.query_limit:
        smoke = (f"\n\n**SMOKE RUN** (catalogue limit {cfg.catalogue_limit}, query limit {cfg.query_limit}): "
                 "the figures are not comparable with the full report.")
    return (f"# ShopRank evaluation report — {cfg.split} split\n\n"
            f"Made by `{cfg.command}` on {started:%Y-%m-%d %H:%M} UTC in {total / 60:.1f} min "
            f"({os.cpu_count()} CPU cores, load average {load:.1f} at the start). Every figure is measured on the "
            f"held-out **{cfg.split}** split (data/README.md: split by query, md5 bucket); nothing was tuned on it. "
            "Engagement (CTR/CVR) is **SIMULATED** (training/engagement.py) wherever it appears." + smoke +
            "\n\n### Models\n\n" + _models(ctx) + "\n\n### Wall time per step (seconds)\n\n"
            + _table(["step", "seconds"], time_rows) + "\n")


@dataclass
class ReportResult:
    markdown: str
    path: Path
    headline: list[Row]
    seconds: dict[str, float]
    figures: dict


def build_report(settings: Settings, config: ReportConfig) -> ReportResult:
    """Run every section and write ``config.out_dir / report.md`` and its PNGs."""
    started, load = dt.datetime.now(dt.UTC), os.getloadavg()[0]
    config.out_dir.mkdir(parents=True, exist_ok=True)
    timings = Timings()
    with timings.section("load data and models"):
        ctx = _load(settings, config)
    _encode(ctx, timings)
    sections = []
    for name, build in (("1 headline", section_headline), ("2 ranker per task", section_tasks),
                        ("3 catalogue retrieval", section_retrieval), ("4 agreement", section_agreement),
                        ("5 student ablations", section_ablations), ("6 keyphrases", section_keyphrases),
                        ("7 trade-off", section_tradeoff),
                        ("8 plots", section_plots), ("9 not yet", section_not_yet)):
        with timings.section(name):
            sections.append(build(ctx))
    markdown = "\n".join([_header(ctx, timings, started=started, load=load), *sections])
    path = config.out_dir / "report.md"
    path.write_text(markdown)
    log.info("report written to %s (%.1f min)", path, sum(timings.seconds.values()) / 60)
    ctx.backend.close()
    return ReportResult(markdown, path, ctx.headline, dict(timings.seconds), ctx.figures)
