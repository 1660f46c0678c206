"""Teacher labels for (query, item) pairs: an LLM judge behind any OpenAI-compatible endpoint.

No LLM is reachable on the machines this project is built on, so the shipped models use the
human labels in ``data/`` as the teacher (``human_teacher_labels``); ``label_pairs`` is the code
path that swaps an LLM in (set ``SHOPRANK_TEACHER_BASE_URL`` / ``_MODEL`` / ``_API_KEY``).
"""

from training.labels.client import Judgement, PairToJudge, TeacherClient, TeacherError
from training.labels.distribution import label_distribution, rethreshold_to_target, reweight_to_target
from training.labels.run import human_teacher_labels, label_pairs

__all__ = [
    "Judgement",
    "PairToJudge",
    "TeacherClient",
    "TeacherError",
    "human_teacher_labels",
    "label_distribution",
    "label_pairs",
    "rethreshold_to_target",
    "reweight_to_target",
]
