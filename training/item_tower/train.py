"""Distil the item tower: MSE between its vectors and the served encoder's, on catalogue titles.

MSE on unit vectors is 2 − 2·cos, so it pulls each title onto the very vector the index holds
(sentence-transformers' ``MSELoss`` recipe for distilling an embedding space; the loop is written out
here because the run is time-boxed: it stops at ``max_minutes`` with the best held-out checkpoint).
A held-out slice of titles (never trained on) measures fidelity: mean and worst cosine to the served
vectors.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class TowerConfig:
    layers: list[int] = field(default_factory=lambda: [0, 3, 5])  # the student's layers kept (best start on validation titles)
    epochs: float = 2.0
    batch_size: int = 64
    learning_rate: float = 5e-5
    warmup_share: float = 0.05
    max_minutes: float = 60.0
    held_out: int = 2000
    eval_every: int = 200
    max_tokens: int = 64
    threads: int = 2
    seed: int = 0
    init_from: str | None = None  # a saved tower dir to continue from (its layers), instead of the student's layers


def _fidelity(tower, tokenizer, texts: list[str], targets: np.ndarray, max_tokens: int) -> tuple[float, float]:
    import torch

    tower.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), 256):
            batch = tokenizer(texts[start:start + 256], padding=True, truncation=True, max_length=max_tokens,
                              return_tensors="pt")
            out.append(tower(batch["input_ids"], batch["attention_mask"]).numpy())
    tower.train()
    cos = np.einsum("ij,ij->i", np.concatenate(out), targets)
    return float(cos.mean()), float(cos.min())


def train_item_tower(settings: Settings, out_dir: Path, config: TowerConfig, *, work_dir: Path) -> dict:
    """Train, keep the checkpoint with the best held-out mean cosine, save it to ``out_dir``; the history."""
    import torch
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    from service.inference.repository import latest_version
    from training.base_model import base_model_path
    from training.item_tower.from_onnx import student_from_onnx
    from training.item_tower.model import ItemTower, keep_layers, load_tower, save_tower
    from training.item_tower.targets import item_targets
    from training.names import STUDENT_CARD

    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    titles, targets, encoder_version = item_targets(settings, work_dir / "targets.npz")
    served = latest_version(settings.model_repo, settings.encoder_model)
    prefixes = json.loads((served.path / "shoprank.json").read_text()).get("prefixes", {})
    titles = [prefixes.get("item", "") + t for t in titles]  # what the encoder embedded for the targets
    if config.init_from:
        tower = load_tower(Path(config.init_from))
        config = replace(config, layers=json.loads((Path(config.init_from) / STUDENT_CARD).read_text())["layers"])
    else:
        student, projection = student_from_onnx(served.path / "model.onnx")
        tower = ItemTower(keep_layers(student, config.layers), projection)
    tokenizer = AutoTokenizer.from_pretrained(base_model_path())
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(titles))
    held, train_rows = order[: config.held_out], order[config.held_out:]
    held_texts, held_targets = [titles[i] for i in held], targets[held]
    steps = int(config.epochs * len(train_rows) / config.batch_size)
    optimizer = torch.optim.AdamW(tower.parameters(), lr=config.learning_rate)
    schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup_share * steps), steps)
    history = [{"step": 0, "held_out_cos": _fidelity(tower, tokenizer, held_texts, held_targets, config.max_tokens)}]
    log.info("item tower %s: start held-out cos %s, %d steps", config.layers, history[0]["held_out_cos"], steps)
    best = history[0]["held_out_cos"][0]
    save_card = {"kind": "item_tower", "layers": config.layers, "teacher": encoder_version,
                 "prefixes": prefixes, "max_seq_length": config.max_tokens}
    save_tower(tower, out_dir, card=save_card | {"held_out_cos": history[0]["held_out_cos"], "step": 0})
    started, step = time.monotonic(), 0
    tower.train()
    while step < steps:
        for start in range(0, len(train_rows), config.batch_size):
            rows = train_rows[start:start + config.batch_size]
            batch = tokenizer([titles[i] for i in rows], padding=True, truncation=True,
                              max_length=config.max_tokens, return_tensors="pt")
            vectors = tower(batch["input_ids"], batch["attention_mask"])
            loss = ((vectors - torch.from_numpy(targets[rows])) ** 2).sum(-1).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tower.parameters(), 1.0)
            optimizer.step(), schedule.step(), optimizer.zero_grad()
            step += 1
            out_of_time = time.monotonic() - started > config.max_minutes * 60
            if step % config.eval_every == 0 or step >= steps or out_of_time:
                cos = _fidelity(tower, tokenizer, held_texts, held_targets, config.max_tokens)
                history.append({"step": step, "loss": float(loss), "held_out_cos": cos,
                                "minutes": round((time.monotonic() - started) / 60, 1)})
                log.info("item tower step %d/%d loss %.4f held-out cos mean %.4f min %.4f", step, steps,
                         float(loss), *cos)
                if cos[0] > best:
                    best = cos[0]
                    save_tower(tower, out_dir, card=save_card | {"held_out_cos": cos, "step": step})
            if step >= steps or out_of_time:
                break
        train_rows = train_rows[rng.permutation(len(train_rows))]
        if time.monotonic() - started > config.max_minutes * 60:
            break
    result = {"config": asdict(config), "teacher": encoder_version, "history": history, "best_held_out_cos": best}
    (work_dir / "history.json").write_text(json.dumps(result, indent=2))
    return result
