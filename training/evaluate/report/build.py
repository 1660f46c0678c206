"""Runs every section in order and writes the report."""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from service.settings import Settings
from training.evaluate.ranking_report import Row
from training.evaluate.report.closing_sections import header, section_not_yet, section_plots
from training.evaluate.report.context import ReportConfig, Timings, encode_shared, load_context
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
    sections = []
    for name, build in (("1 headline", section_headline), ("2 ranker per task", section_tasks),
                        ("3 catalogue retrieval", section_retrieval), ("4 agreement", section_agreement),
                        ("5 student ablations", section_ablations), ("6 keyphrases", section_keyphrases),
                        ("7 trade-off", section_tradeoff),
                        ("8 plots", section_plots), ("9 not yet", section_not_yet)):
        with timings.section(name):
            sections.append(build(ctx))
    markdown = "\n".join([header(ctx, timings, started=started, load=load), *sections])
    path = config.out_dir / "report.md"
    path.write_text(markdown)
    log.info("report written to %s (%.1f min)", path, sum(timings.seconds.values()) / 60)
    ctx.backend.close()
    return ReportResult(markdown, path, ctx.headline, dict(timings.seconds), ctx.figures)
