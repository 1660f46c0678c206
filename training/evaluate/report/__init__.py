"""``shoprank eval --report DIR``: the full held-out report, ``DIR/report.md`` + ``DIR/*.png``.

Every figure is measured on one split (the held-out test split unless ``--split`` says otherwise);
nothing is tuned here: the relevance floor, label rule and weights are the served ones. The
expensive parts run once and are shared by the sections: the served encoder and the student encode
the split's queries and the whole catalogue at full width (Matryoshka cuts are taken from those),
and the ranker scores each task's pairs once. Each section logs and records its wall time.

Sections: 1 headline table, 2 ranker per task, 3 catalogue recall by dimension, 4 student–ranker
agreement, 5 student ablations (KD loss, training signals), 6 production-style keyphrases,
7 relevance–engagement trade-off, 8 plots, 9 what the report does not contain yet.

Layout: ``context`` (configuration, loaded split and models, shared encodings, timings),
``markdown`` (number and table formatting), one module per group of sections (``ranker_sections``
1–2, ``student_sections`` 3–5, ``product_sections`` 6–7, ``closing_sections`` 8–9 and the header),
``build`` (runs them in order). The measuring itself lives in the sibling modules of
``training/evaluate/`` (metrics, retrieval, ablation, keyphrase_eval, tradeoff, …); the sections
only call them and write markdown.
"""

from training.evaluate.report.build import ReportResult, build_report
from training.evaluate.report.context import ReportConfig

__all__ = ["ReportConfig", "ReportResult", "build_report"]
