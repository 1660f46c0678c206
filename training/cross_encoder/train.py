"""Train the unified ranker on labelled pairs (+ simulated engagement) with a plain torch loop.

sentence-transformers' CrossEncoder has one regression/classification head; the ordinal
head with rank-consistent thresholds and the engagement heads need this small loop.
Batches are length-grouped (padding is most of the cost on short texts).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from service.ranking.ordinal import cumulative_targets
from training.base_model import base_model_path
from training.cross_encoder.losses import (
    engagement_loss,
    expected_value_loss,
    ordinal_loss,
    pairwise_rank_loss,
)
from training.cross_encoder.model import UnifiedRanker

log = logging.getLogger(__name__)


@dataclass
class RankerConfig:
    tasks: list[str] = field(default_factory=lambda: ["query_item"])
    routing: str = "prefix"
    private_layers: int = 1  # mhp only: per-task private copies of the top transformer layers
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3
    warmup_ratio: float = 0.05
    max_tokens: int = 64
    w_ordinal: float = 1.0
    w_expected: float = 1.0
    w_engagement: float = 0.5
    w_pairwise: float = 0.0  # RankNet between candidates of the same query (needs batching="group")
    batching: str = "length"  # length: similar lengths together (fastest); group: whole queries together
    threads: int = 2
    seed: int = 13
    init_from: str | None = None  # a trained ranker artifact to continue from (a further epoch at a lower lr)

    def __post_init__(self) -> None:
        if self.batching not in ("length", "group"):
            raise ValueError(f"batching must be 'length' or 'group', not {self.batching!r}")
        if self.w_pairwise and self.batching != "group":
            raise ValueError("w_pairwise needs batching='group': length-grouped batches almost never hold two "
                             "candidates of one query")

    def task_prefixes(self) -> dict[str, str]:
        """Text routing tokens; a single-task model needs none."""
        if self.routing != "prefix" or len(self.tasks) == 1:
            return {}
        return {task: f"[{task}] " for task in self.tasks}


def _length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(len(lengths))
    mega = batch_size * 50
    batches = []
    for start in range(0, len(order), mega):
        chunk = order[start : start + mega]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _group_batches(groups: np.ndarray, lengths: np.ndarray, batch_size: int,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """Whole groups (a query's candidates) per batch, so a pairwise loss has pairs to compare; groups of
    similar mean length are packed together, and a group larger than a batch is split."""
    members = pd.Series(np.arange(len(groups))).groupby(groups).agg(list)
    order = rng.permutation(len(members))
    mean_length = np.array([lengths[m].mean() for m in members])
    mega = max(1, batch_size * 50 * len(members) // len(groups))  # ≈ 50 batches of groups per sorted chunk
    batches, current = [], []
    for start in range(0, len(order), mega):
        chunk = order[start : start + mega]
        for g in chunk[np.argsort(mean_length[chunk], kind="stable")]:
            rows = list(rng.permutation(members.iloc[g]))
            while rows:
                room = batch_size - len(current)
                current.extend(rows[:room])
                rows = rows[room:]
                if len(current) == batch_size:
                    batches.append(np.array(current))
                    current = []
    if current:
        batches.append(np.array(current))
    rng.shuffle(batches)
    return batches


def optimizer_step(loss: torch.Tensor, model: torch.nn.Module, optimizer, scheduler) -> None:
    """One update of the rankers trained here: backward, gradient norm clipped at 1, optimiser and schedule
    stepped, gradients cleared."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()


def train_ranker(rows: pd.DataFrame, config: RankerConfig, out_dir: Path) -> Path:
    """Rows need ``task, left, right, relevance, ctr, cvr, cvr_mask``; writes ``out_dir/{model.pt,config.json}``."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    base = base_model_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = UnifiedRanker(base, tasks=config.tasks, routing=config.routing, private_layers=config.private_layers)
    if config.init_from:
        model.load_state_dict(_continued_weights(Path(config.init_from), config))

    prefixes = config.task_prefixes()
    lefts = [prefixes.get(t, "") + s for t, s in zip(rows["task"], rows["left"])]
    rights = rows["right"].tolist()
    lengths = np.array([len(ids) for ids in tokenizer(lefts, rights, truncation=True, max_length=config.max_tokens)["input_ids"]])
    task_ids = torch.tensor(rows["task"].map({t: i for i, t in enumerate(config.tasks)}).to_numpy(), dtype=torch.long)
    cum = torch.tensor(cumulative_targets(rows["relevance"].to_numpy()), dtype=torch.float32)
    relevance = torch.tensor(rows["relevance"].to_numpy(), dtype=torch.float32)
    if "ctr_mask" not in rows:
        rows = rows.assign(ctr_mask=1.0)
    eng = torch.tensor(rows[["ctr", "cvr", "cvr_mask", "ctr_mask"]].to_numpy(dtype=np.float32))
    groups = (rows["task"] + "\t" + rows["left"]).factorize()[0]
    group_ids = torch.tensor(groups, dtype=torch.long)

    head_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW(
        [{"params": model.encoder.parameters(), "lr": config.lr}, {"params": head_params, "lr": config.head_lr}],
        weight_decay=0.01,
    )
    steps_per_epoch = math.ceil(len(rows) / config.batch_size)
    total_steps = max(1, int(steps_per_epoch * config.epochs))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * config.warmup_ratio), total_steps)

    model.train()
    step, started = 0, time.time()
    bar = tqdm(total=total_steps, desc="ranker", mininterval=10)
    while step < total_steps:
        batches = (_group_batches(groups, lengths, config.batch_size, rng) if config.batching == "group"
                   else _length_grouped_batches(lengths, config.batch_size, rng))
        for idx in batches:
            if step >= total_steps:
                break
            batch = tokenizer([lefts[i] for i in idx], [rights[i] for i in idx], truncation=True,
                              max_length=config.max_tokens, padding=True, return_tensors="pt")
            rel_logits, eng_logits = model(**batch, task_id=task_ids[idx])
            loss = (
                config.w_ordinal * ordinal_loss(rel_logits, cum[idx])
                + config.w_expected * expected_value_loss(rel_logits, relevance[idx])
                + config.w_engagement * engagement_loss(eng_logits, *eng[idx].unbind(1))
            )
            if config.w_pairwise:
                loss = loss + config.w_pairwise * pairwise_rank_loss(rel_logits, relevance[idx], group_ids[idx])
            optimizer_step(loss, model, optimizer, scheduler)
            step += 1
            bar.update(1)
            if step % 100 == 0:
                rate = step * config.batch_size / (time.time() - started)
                bar.set_postfix(loss=f"{loss.item():.4f}", pairs_per_s=f"{rate:.0f}")
                log.info("step %d/%d loss %.4f (%.0f pairs/s)", step, total_steps, loss.item(), rate)
    bar.close()

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / "model.pt")
    meta = asdict(config) | {"task_prefixes": prefixes, "train_pairs": len(rows), "train_seconds": round(time.time() - started, 1)}
    (out_dir / "config.json").write_text(json.dumps(meta, indent=2))
    tokenizer.save_pretrained(out_dir / "tokenizer")
    return out_dir


def _continued_weights(artifact: Path, config: RankerConfig) -> dict[str, torch.Tensor]:
    """The weights of a ranker trained with the same tasks and routing (anything else would not line up)."""
    meta = json.loads((artifact / "config.json").read_text())
    for key in ("tasks", "routing", "private_layers"):
        if meta.get(key) != getattr(config, key):
            raise ValueError(f"{artifact} was trained with {key}={meta.get(key)!r}, not {getattr(config, key)!r}")
    return torch.load(artifact / "model.pt", map_location="cpu")


def load_ranker(out_dir: Path) -> tuple[UnifiedRanker, dict]:
    meta = json.loads((out_dir / "config.json").read_text())
    model = UnifiedRanker(base_model_path(), tasks=meta["tasks"], routing=meta["routing"],
                          private_layers=meta.get("private_layers", 1))
    if meta.get("kept_layers"):  # a layer-dropped student (training/cross_encoder/layer_drop.py)
        from training.cross_encoder.layer_drop import drop_layers

        drop_layers(model, list(meta["kept_layers"]))
    model.load_state_dict(torch.load(out_dir / "model.pt", map_location="cpu"))
    model.eval()
    return model, meta


def train_ranker_from_files(*, data_dir: Path, out_dir: Path, config: RankerConfig, limit: int | None = None) -> Path:
    """A ranker on ``config.tasks`` of the train split (the foundation ranker: query_item only), ordinal +
    engagement heads; ``limit`` caps every task's rows (a budgeted run)."""
    from training.data import labelled_pairs, split_frame
    from training.tasks import ranker_rows

    rows = ranker_rows(split_frame(labelled_pairs(data_dir), "train"), tasks=config.tasks, limit=limit,
                       seed=config.seed)
    return train_ranker(rows, config, out_dir)
