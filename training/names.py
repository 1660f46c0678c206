"""The one home of the names and fixed values the training package shares (torch-free, so the report,
the CLI and the cards can import it without loading a model).

``TASKS`` is also the ranker card's task order: a ``task_id`` indexes it (the unified ranker and the
first phase both rely on that). Presets (run sizes) live with what they size: ``StudentConfig.PRESETS``
and ``training/recipe.py``'s ``PRESETS``.
"""

from __future__ import annotations

from service.tasks import TASKS  # noqa: F401 - its one home is the service's (the API schema offers them)

ROUTINGS: tuple[str, ...] = ("prefix", "multihead", "mhp")  # how the unified ranker tells the tasks apart
KD_LOSSES: tuple[str, ...] = ("pearson", "cosent", "mse")  # the student's distillation losses, default first
MATRYOSHKA_DIMS: tuple[int, ...] = (384, 256, 128, 64)  # the student's cuts; 64 is what the service can serve
STUDENT_CARD = "shoprank_student.json"  # a trained student's own card (prefixes, dims, KD loss, adaptor)
