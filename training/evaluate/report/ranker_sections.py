"""Report sections 1 (headline table) and 2 (the ranker per task, every trained ranker, multi- vs single-task)."""

from __future__ import annotations

from training.data import split_frame
from training.evaluate.metrics import ndcg_at_k
from training.evaluate.ranker_compare import compare_rankers, ranker_artifacts
from training.evaluate.ranking_report import Row, ranker_row, train_mean_row
from training.evaluate.report.context import Context, ScoredSplit
from training.evaluate.report.markdown import md_table, num
from training.evaluate.task_eval import score_in_chunks, task_figures, task_rows
from training.names import TASKS

# --- 1 -------------------------------------------------------------------------------------------

def section_headline(ctx: Context, scored: ScoredSplit) -> tuple[str, list[Row]]:
    """The section's markdown and its rows (``shoprank eval --report`` prints them)."""
    frame, settings, dims = scored.frame.copy(), ctx.settings, ctx.config.dims
    train_mean = float(split_frame(ctx.pairs, "train")["relevance"].mean())
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
    rows.append(ranker_row(f"**ranker {ctx.scorer.model_version}** (expected relevance)", frame, scored.heads,
                           key="ranker"))
    ctx.figures["headline"] = {r.system: r for r in rows}
    n_queries = int((frame.groupby("query").size() >= 2).sum())
    table = md_table(["system", "NDCG@10", "RMSE (1–3)", "3-level acc.", "macro-F1"],
                   [[r.system, notes.get(r.system) or num(r.ndcg10), num(r.rmse), num(r.accuracy), num(r.macro_f1)]
                    for r in rows])
    markdown = (f"## 1. Headline\n\n{len(frame):,} {ctx.config.split} pairs; NDCG@10 over the {n_queries:,} queries with "
                "at least 2 candidates, gain 2^(r−1) − 1 on the human mean r. Encoders score a pair by the cosine of "
                "the query and title embeddings; a d-dim row keeps the first d dimensions of the 384-d embedding "
                "and re-normalises. The ranker's RMSE is its expected rating 1 + E[y] against the human mean; its "
                "3-level label cuts that expected rating at the points calibrated on validation in its model card "
                "(`shoprank calibrate`), or at the data README's rule when the card has none.\n\n" + table + "\n")
    return markdown, rows


# --- 2 -------------------------------------------------------------------------------------------

def section_tasks(ctx: Context, scored: ScoredSplit) -> str:
    rows_by_task = task_rows(ctx.frame)
    figures = []
    for task in TASKS:
        rows = rows_by_task[task]
        heads = scored.heads if task == "query_item" else score_in_chunks(
            ctx.scorer, rows["left"].tolist(), rows["right"].tolist(), task=task)
        figures.append(task_figures(task, rows, heads.relevance))
    ctx.figures["tasks"] = figures
    card = ctx.scorer.card
    trained_on = card.get("training", {}).get("tasks", card.get("tasks", []))
    table = md_table(["task", "rows", "labels irrelevant / partial / exact", "majority-class share",
                    "3-level acc.", "macro-F1", "RMSE (1–3)"],
                   [[f.task, f"{f.rows:,}", " / ".join(f"{s:.2f}" for s in f.shares), num(max(f.shares)),
                     num(f.accuracy), num(f.macro_f1), num(f.rmse)] for f in figures])
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
             num(f.train_seconds / 60, 1) if f.train_seconds else "—", task, num(t.accuracy), num(t.macro_f1),
             num(t.rmse), num(f.ndcg10) if task == "query_item" else "—"]
            for f in figures for task, t in f.by_task.items()]
    table = md_table(["ranker", "routing", "trained on", "train rows", "train min", "task", "3-level acc.",
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
    gain_table = md_table(["task", f"{ctx.config.split} rows", "single-task", "multi-task", "Δ acc.", "Δ macro-F1",
                         "Δ RMSE (lower is better)"], gains) if gains else "(no single-task baseline trained)"
    return ("\n### Trained rankers from `artifacts/` (torch fp32, not served)\n\nEvery ranker artifact under "
            f"`{ctx.config.artifacts}/`, scored with `training.cross_encoder.predict.TorchPairScorer` on the tasks it "
            "was trained on (task prefix or task id as trained); the ensemble votes over the routing variants "
            "that share a task set (`training/cross_encoder/ensemble.py`). Train rows and minutes are from "
            "each artifact's config.json.\n\n" + table + "\n\nMulti-task against the single-task baseline "
            "trained the same way on that task alone:\n\n" + gain_table + "\n")
