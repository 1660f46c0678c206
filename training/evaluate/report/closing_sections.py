"""Report sections 8 (the plots) and 9 (what the artifacts do not cover yet), and the header with the models and timings."""

from __future__ import annotations

import datetime as dt
import os

from training.evaluate import inventory, plots
from training.evaluate.embeddings import student_card
from training.evaluate.report.context import Context, Timings
from training.evaluate.report.markdown import md_table

# --- 8, 9 ----------------------------------------------------------------------------------------

def section_plots(ctx: Context, recall: dict[str, dict[int, float]]) -> str:
    """``recall``: section 3's recall@k by encoder and cut."""
    out = ctx.config.out_dir
    plots.recall_by_dim(recall, out / "recall_by_dim.png", k=ctx.config.recall_k)
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
    return md_table(["model", "version", "card"], rows)


def _adaptor_note(adaptor: dict | None) -> str:
    """The student card's adaptor step in words (training/biencoder/adaptor.py), or nothing."""
    if not adaptor:
        return ""
    return (f"; + catalogue-softmax adaptor: {adaptor.get('epochs')} epochs, {adaptor.get('queries')} train queries, "
            f"{adaptor.get('negatives')} products, labels ≥ {adaptor.get('min_label')} as positives, "
            f"cut weights {adaptor.get('weights')}")


FITTED_ON_VALIDATION = ("the served ranker's relevance floor, 3-level label cuts and engagement priors, and the "
                        "first phase's floor (training/calibrate.py)")


def split_use(split: str) -> str:
    """What the evaluated split was used for before this report: the header says it, not the reader's guess."""
    if split == "test":
        return (f"It is held out: nothing was trained, fitted or chosen on it ({FITTED_ON_VALIDATION} were fitted "
                "on validation).")
    if split == "validation":
        return (f"NOT held out: {FITTED_ON_VALIDATION} were fitted on this split and students were chosen on it, "
                "so the ranker's accuracy and floor figures are optimistic; the test split's are the held-out ones.")
    return "NOT held out: the models were trained on this split."


def header(ctx: Context, timings: Timings, *, started: dt.datetime, load: float) -> str:
    """The report's opening: command, date, machine, the models with their cards, wall time per step."""
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
            f"**{cfg.split}** split (data/README.md: split by query, md5 bucket). {split_use(cfg.split)} "
            "Engagement (CTR/CVR) is **SIMULATED** (training/engagement.py) wherever it appears." + smoke +
            "\n\n### Models\n\n" + _models(ctx) + "\n\n### Wall time per step (seconds)\n\n"
            + md_table(["step", "seconds"], time_rows) + "\n")
