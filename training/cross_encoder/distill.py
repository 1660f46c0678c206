"""A cheaper second phase: a layer-dropped student of the served ranker, distilled on its logits.

The eBay cross-encoder recipe distils a large judge into a smaller cross-encoder by regressing the
teacher's outputs; DistilBERT initialises the student from every other teacher layer. Here the teacher
is the served int8 ranker (rebuilt in torch by ``layer_drop.ranker_from_onnx``); the student keeps
``keep_layers`` of its 6 transformer layers with its embeddings and heads, and learns the teacher's
four raw logits (two cumulative relevance logits, CTR and CVR) on train pairs of every task:

* ``mse``: squared error of each logit, so the student's logits keep the teacher's scale and the
  teacher's calibration (floor, cut points) stays meaningful;
* ``pearson``: 1 − Pearson r of each logit over the batch (scale-free, as the student's KD loss).

The targets are the served ranker's int8 logits: either read from a file of its scores on train pairs
(``training/first_phase/targets.py`` writes one: ``left``, ``right``, ``task``, ``relevance_logits``,
``engagement_logits``), or, without one, computed batch by batch by the teacher's own ``model.onnx`` in
ONNX Runtime on the ranker's train rows (the same tokens the student sees; no separate scoring pass). A wall-clock budget (``max_seconds``) plans the learning-rate schedule: after
a few steps the measured step time fixes how many steps fit, so the decay ends when the budget does.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from transformers import AutoTokenizer

from training.base_model import base_model_path
from training.cross_encoder.layer_drop import drop_layers, ranker_from_onnx, write_artifact
from training.cross_encoder.train import _length_grouped_batches, optimizer_step

log = logging.getLogger(__name__)

LOSSES = ("mse", "pearson")


@dataclass
class LiteConfig:
    teacher: str = "model_repo/ranker/3"  # an exported version directory (int8 or fp32 model.onnx + card)
    keep_layers: list[int] = field(default_factory=lambda: [0, 2, 4])
    loss: str = "mse"
    w_engagement: float = 1.0  # weight of the CTR/CVR logits against the two relevance logits
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 1e-4
    warmup_ratio: float = 0.05
    max_tokens: int = 64
    max_seconds: float | None = None  # wall-clock budget; the schedule is planned to end with it
    limit: int | None = None  # distil on a random sample of this many target pairs
    threads: int = 2
    seed: int = 13
    init_from: str | None = None  # continue a student artifact (same kept layers) instead of dropping afresh

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {self.loss!r}")


def pearson_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over columns of 1 − Pearson r between student and teacher over the batch."""
    s = student - student.mean(0, keepdim=True)
    t = teacher - teacher.mean(0, keepdim=True)
    r = (s * t).sum(0) / (s.norm(dim=0) * t.norm(dim=0)).clamp(min=1e-8)
    return (1.0 - r).mean()


def distillation_loss(rel: torch.Tensor, eng: torch.Tensor, rel_target: torch.Tensor, eng_target: torch.Tensor,
                      *, loss: str = "mse", w_engagement: float = 1.0) -> torch.Tensor:
    """The student's loss on one batch: relevance logits + ``w_engagement`` × engagement logits."""
    fn = F.mse_loss if loss == "mse" else pearson_loss
    return fn(rel, rel_target) + w_engagement * fn(eng, eng_target)


def load_targets(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        out = {name: data[name] for name in ("left", "right", "task", "relevance_logits", "engagement_logits")}
    return out


def _planned_schedule(optimizer: torch.optim.Optimizer, plan: dict) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then linear decay to 0 at ``plan['total']`` steps (which a budget may shorten)."""
    def factor(step: int) -> float:
        warmup = max(1, int(plan["total"] * plan["warmup_ratio"]))
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (plan["total"] - step) / max(1, plan["total"] - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_pairs(data_dir: Path, tasks: list[str]) -> dict[str, np.ndarray]:
    """The ranker's own train rows of ``tasks`` (``left``, ``right``, ``task``), without targets."""
    from training.data import labelled_pairs, split_frame
    from training.tasks import ranker_rows

    rows = ranker_rows(split_frame(labelled_pairs(data_dir), "train"), tasks=tasks)
    return {"left": rows["left"].to_numpy(str), "right": rows["right"].to_numpy(str), "task": rows["task"].to_numpy(str)}


class OnnxTeacher:
    """The teacher's exported ``model.onnx`` (int8 as served) run on a training batch's tokens."""

    def __init__(self, onnx_path: Path, *, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # cores shared with the student
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        rel, eng = self.session.run(["relevance_logits", "engagement_logits"],
                                    {name: batch[name].numpy().astype(np.int64) for name in self.inputs})
        return torch.from_numpy(rel), torch.from_numpy(eng)


def distil_lite_ranker(targets: dict[str, np.ndarray], config: LiteConfig, out_dir: Path) -> Path:
    """Train the layer-dropped student on the teacher's logits; writes a ranker artifact to ``out_dir``.

    ``targets`` without ``relevance_logits`` (``train_pairs``) are scored by the teacher's ONNX file per batch."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    model, card = ranker_from_onnx(Path(config.teacher))
    teacher_layers = len(model.encoder.encoder.layer)
    if config.init_from:
        from training.cross_encoder.train import load_ranker

        model, earlier = load_ranker(Path(config.init_from))
        if earlier.get("kept_layers") != list(config.keep_layers):
            raise ValueError(f"{config.init_from} kept layers {earlier.get('kept_layers')}, not {config.keep_layers}")
    else:
        drop_layers(model, list(config.keep_layers))
    tokenizer = AutoTokenizer.from_pretrained(base_model_path())

    rows = np.arange(len(targets["left"]))
    if config.limit and config.limit < len(rows):
        rows = np.sort(rng.choice(rows, size=config.limit, replace=False))
    prefixes = card.get("task_prefixes", {})
    lefts = [prefixes.get(str(t), "") + str(s) for t, s in zip(targets["task"][rows], targets["left"][rows])]
    rights = [str(s) for s in targets["right"][rows]]
    online = "relevance_logits" not in targets
    teacher = OnnxTeacher(Path(config.teacher) / "model.onnx", threads=config.threads) if online else None
    if not online:
        rel_target = torch.tensor(targets["relevance_logits"][rows], dtype=torch.float32)
        eng_target = torch.tensor(targets["engagement_logits"][rows], dtype=torch.float32)
    lengths = np.array([len(ids) for ids in tokenizer(lefts, rights, truncation=True, max_length=config.max_tokens)["input_ids"]])

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    plan = {"total": max(1, int(math.ceil(len(rows) / config.batch_size) * config.epochs)),
            "warmup_ratio": config.warmup_ratio}
    scheduler = _planned_schedule(optimizer, plan)
    log.info("ranker-lite: %d of %d layers %s, %d pairs, %d steps planned", len(config.keep_layers), teacher_layers,
             config.keep_layers, len(rows), plan["total"])

    model.train()
    step, started, running = 0, time.time(), []
    while step < plan["total"]:
        for idx in _length_grouped_batches(lengths, config.batch_size, rng):
            if step >= plan["total"]:
                break
            batch = tokenizer([lefts[i] for i in idx], [rights[i] for i in idx], truncation=True,
                              max_length=config.max_tokens, padding=True, return_tensors="pt")
            rel_t, eng_t = teacher(batch) if online else (rel_target[idx], eng_target[idx])
            rel, eng = model(**batch)
            loss = distillation_loss(rel, eng, rel_t, eng_t, loss=config.loss, w_engagement=config.w_engagement)
            optimizer_step(loss, model, optimizer, scheduler)
            step += 1
            running.append(loss.item())
            elapsed = time.time() - started
            if config.max_seconds and step == 20:  # fit the schedule to the budget from the measured step time
                fits = int(config.max_seconds / (elapsed / step))
                if fits < plan["total"]:
                    log.info("ranker-lite: %.2f s/step, the budget of %.0f s fits %d of %d steps", elapsed / step,
                             config.max_seconds, fits, plan["total"])
                    plan["total"] = max(step + 1, fits)
            if step % 100 == 0:
                log.info("step %d/%d loss %.4f (%.0f pairs/s)", step, plan["total"], float(np.mean(running[-100:])),
                         step * config.batch_size / elapsed)
            if config.max_seconds and elapsed > config.max_seconds * 1.1:  # the schedule was planned to end sooner
                log.warning("ranker-lite: over budget at step %d of %d; stopping", step, plan["total"])
                plan["total"] = step
                break
    model.eval()
    meta = {
        "tasks": card["tasks"], "routing": "prefix", "private_layers": 1, "task_prefixes": prefixes,
        "max_tokens": config.max_tokens, "kept_layers": list(config.keep_layers), "teacher_layers": teacher_layers,
        "distilled_from": str(config.teacher), "distillation": asdict(config),
        "targets": "teacher ONNX per batch" if online else "precomputed teacher scores",
        "train_pairs": len(rows), "steps": step, "train_seconds": round(time.time() - started, 1),
        "final_loss": round(float(np.mean(running[-100:])), 5) if running else None,
    }
    return write_artifact(model, meta, out_dir)


def init_only_artifact(config: LiteConfig, out_dir: Path) -> Path:
    """The dropped student before any distillation (a baseline for the layer choice)."""
    model, card = ranker_from_onnx(Path(config.teacher))
    teacher_layers = len(model.encoder.encoder.layer)
    drop_layers(model, list(config.keep_layers))
    meta = {"tasks": card["tasks"], "routing": "prefix", "private_layers": 1,
            "task_prefixes": card.get("task_prefixes", {}), "max_tokens": config.max_tokens,
            "kept_layers": list(config.keep_layers), "teacher_layers": teacher_layers,
            "distilled_from": str(config.teacher), "steps": 0}
    return write_artifact(model, meta, out_dir)


def read_meta(artifact: Path) -> dict:
    return json.loads((artifact / "config.json").read_text())
