"""What trained artifacts exist, from their own cards: the report's model versions and its "not yet" list.

Rankers are found as ``<artifacts>/*/config.json`` carrying ``routing`` and ``tasks`` (what
``train_ranker`` writes); students as ``<artifacts>/*/shoprank_student.json``. Nothing is inferred
beyond what those files say, so the "not yet" list (section 9) only names comparisons whose
artifacts are absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from training.names import KD_LOSSES, ROUTINGS, STUDENT_CARD

__all__ = ["KD_LOSSES", "ROUTINGS", "Inventory", "scan"]
LABEL_ABLATION = {  # (use_clicks, use_labels, use_kd) → name used in docs/training.md
    (True, False, False): "click only",
    (True, True, False): "clicks + labels",
    (True, True, True): "clicks + labels + KD",
}


@dataclass
class Inventory:
    rankers: dict[str, dict] = field(default_factory=dict)  # dir name → config.json
    teacher_labels: bool = False  # artifacts/teacher_labels.parquet (``shoprank label``) exists
    students: dict[str, dict] = field(default_factory=dict)  # dir name → shoprank_student.json


def scan(artifacts: Path, *, extra_students: tuple[Path, ...] = ()) -> Inventory:
    inv = Inventory()
    inv.teacher_labels = (artifacts / "teacher_labels.parquet").exists()
    if artifacts.is_dir():
        for config in sorted(artifacts.glob("*/config.json")):
            data = json.loads(config.read_text())
            if "routing" in data and "tasks" in data:
                inv.rankers[config.parent.name] = data
        for card in sorted(artifacts.glob(f"*/{STUDENT_CARD}")):
            inv.students[card.parent.name] = json.loads(card.read_text())
    for path in extra_students:
        card = path / STUDENT_CARD
        if card.exists():
            inv.students.setdefault(path.name, json.loads(card.read_text()))
    return inv


def missing(inv: Inventory, *, served_encoder: str) -> list[str]:
    """Factual lines for each comparison of the full recipe whose artifacts are not there.

    ``served_encoder`` is the served encoder card's ``source`` (says whether a student is served).
    """
    lines = []
    multi = {name: c for name, c in inv.rankers.items() if len(c.get("tasks", [])) > 1}
    routings = {c.get("routing") for c in multi.values()}
    absent = [r for r in ROUTINGS if r not in routings]
    if absent:
        found = ", ".join(f"{n} ({c.get('routing')})" for n, c in multi.items()) or "none"
        lines.append(f"**Routing variants**: no multi-task ranker trained with routing {', '.join(absent)} "
                     f"(multi-task rankers found: {found}); "
                     "so no per-variant figures and no ensemble of the variants (`training/cross_encoder/ensemble.py`).")
    if not multi:
        single = ", ".join(f"{n} ({'+'.join(c.get('tasks', []))}, {c.get('routing')})" for n, c in inv.rankers.items())
        lines.append("**Multi-task vs single-task per task**: no multi-task ranker exists, so section 2 has only the "
                     f"single-task baseline (rankers found: {single or 'none'}).")
    kd = {c.get("kd_loss") for c in inv.students.values() if c.get("use_kd", True)}
    absent_kd = [loss for loss in KD_LOSSES if loss not in kd]
    if absent_kd:
        lines.append(f"**KD-loss ablation**: no student trained with KD loss {', '.join(absent_kd)} "
                     f"(found: {', '.join(sorted(k for k in kd if k)) or 'none'}).")
    combos = {(c.get("use_clicks", True), c.get("use_labels", True), c.get("use_kd", True)) for c in inv.students.values()}
    absent_labels = [name for combo, name in LABEL_ABLATION.items() if combo not in combos]
    if absent_labels:
        lines.append(f"**Student label ablation**: no student for {', '.join(absent_labels)}.")
    trials = {name: card for name, card in inv.students.items()
              if card.get("stopped_by_time_budget") or card.get("max_rows") or card.get("max_rows_per_dataset")}
    if trials:
        caps = {str(card.get("max_rows") or card.get("max_rows_per_dataset")) for card in trials.values()}
        steps = ", ".join(f"`{name}` {card.get('steps', '?')}" + (" (stopped by its time budget)"
                                                                  if card.get("stopped_by_time_budget") else "")
                          for name, card in trials.items())
        lines.append(f"**Full student run**: every student here is a budgeted trial (rows capped at "
                     f"{' / '.join(sorted(caps))}; optimiser steps: {steps}); no uncapped epoch has been run. "
                     f"The served encoder is: {served_encoder}.")
    if not inv.students:
        lines.append("**Student**: no student artifact was given or found, so every student row reads "
                     "\"not trained\".")
    if not inv.teacher_labels:
        lines.append("**LLM teacher**: no LLM teacher labels (`artifacts/teacher_labels.parquet` absent); the "
                     "ranker and the student were taught by the human labels (docs/training.md).")
    return lines
