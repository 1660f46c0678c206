"""Runs every section and writes the report.

Each section takes what it reads as arguments: the context (split, models, shared encodings), the split
scored once by the baselines and the served ranker (``score_split``), and the figures of an earlier section
where it needs them (section 5 the zero-shot row of 4, section 8 the recall of 3). None reads another's
side effects, so the order below is only the report's reading order."""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from service.settings import Settings
from training.evaluate.ranking_report import Row
from training.evaluate.report.closing_sections import header, section_not_yet, section_plots
from training.evaluate.report.context import ReportConfig, Timings, encode_shared, load_context, score_split
from training.evaluate.report.product_sections import section_keyphrases, section_tradeoff
from training.evaluate.report.ranker_sections import section_headline, section_tasks
from training.evaluate.report.student_sections import section_ablations, section_agreement, section_retrieval

log = logging.getLogger(__name__)


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
        ctx = load_context(settings, config)
    encode_shared(ctx, timings)
    with timings.section("score: baselines and the served ranker"):
        scored = score_split(ctx)
    sections = []

    def run(name: str, build, *inputs):
        with timings.section(name):
            out = build(ctx, *inputs)
        sections.append(out[0] if isinstance(out, tuple) else out)
        return out[1] if isinstance(out, tuple) else None

    headline = run("1 headline", section_headline, scored)
    run("2 ranker per task", section_tasks, scored)
    recall = run("3 catalogue retrieval", section_retrieval)
    agreement = run("4 agreement", section_agreement, scored)
    run("5 student ablations", section_ablations, scored, agreement)
    run("6 keyphrases", section_keyphrases)
    run("7 trade-off", section_tradeoff, scored)
    run("8 plots", section_plots, recall)
    run("9 not yet", section_not_yet)
    markdown = "\n".join([header(ctx, timings, started=started, load=load), *sections])
    path = config.out_dir / "report.md"
    path.write_text(markdown)
    log.info("report written to %s (%.1f min)", path, sum(timings.seconds.values()) / 60)
    ctx.backend.close()
    return ReportResult(markdown, path, headline, dict(timings.seconds), ctx.figures)
