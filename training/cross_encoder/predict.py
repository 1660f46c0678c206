"""Score pairs with a trained ranker artifact in torch (fp32), with the served scorer's interface.

The report compares rankers that were trained but not exported (routing variants, single-task
baselines): ``TorchPairScorer.score(lefts, rights, task=...)`` returns the same ``PairHeads`` as
``service.inference.models.PairScorer``, routing each task the way the artifact was trained (text
prefix from its config, or ``task_id`` for ``multihead`` / ``mhp``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

from service.inference.models import PairHeads
from service.ranking.ordinal import from_cumulative_logits, sigmoid
from training.cross_encoder.train import load_ranker


class TorchPairScorer:
    def __init__(self, artifact: Path, *, batch_size: int = 64, threads: int = 2) -> None:
        torch.set_num_threads(threads)
        self.model, self.card = load_ranker(artifact)
        self.tokenizer = AutoTokenizer.from_pretrained(artifact / "tokenizer")
        self.model_version = f"{artifact.name} (torch fp32)"
        self.batch_size = batch_size
        self.max_tokens = int(self.card.get("max_tokens", 64))

    @classmethod
    def is_artifact(cls, path: Path) -> bool:
        config = path / "config.json"
        return (path / "model.pt").exists() and config.exists() and "routing" in json.loads(config.read_text())

    def tasks(self) -> list[str]:
        return list(self.card["tasks"])

    def score(self, lefts: list[str], rights: list[str], *, task: str = "query_item") -> PairHeads:
        if task not in self.card["tasks"]:
            raise ValueError(f"{self.model_version} was not trained on {task!r} (tasks: {self.card['tasks']})")
        prefix = self.card.get("task_prefixes", {}).get(task, "")
        task_index = self.card["tasks"].index(task)
        texts = [prefix + text for text in lefts]
        order = np.argsort([len(t) + len(r) for t, r in zip(texts, rights)], kind="stable")  # less padding
        relevance_logits, engagement_logits = np.empty((len(texts), 2)), np.empty((len(texts), 2))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in idx], [rights[i] for i in idx], truncation=True,
                                       max_length=self.max_tokens, padding=True, return_tensors="pt")
                task_id = torch.full((len(idx),), task_index, dtype=torch.long)
                rel, eng = self.model(**batch, task_id=task_id)
                relevance_logits[idx], engagement_logits[idx] = rel.numpy(), eng.numpy()
        engagement = sigmoid(engagement_logits)  # the served scorer's read-out of the same logits
        return PairHeads(from_cumulative_logits(relevance_logits), engagement[:, 0], engagement[:, 1])
