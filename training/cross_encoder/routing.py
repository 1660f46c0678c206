"""MHP task routing: per-task private copies of the encoder's top transformer layer(s).

The Walmart unified-relevance paper's third routing: the bottom layers are shared by every
entity-pair task, the top ``k`` layers (and the ordinal head) are private to each task, so a task
can specialise its last representations without a separate model. Each private tower starts as
a copy of the pretrained top layers.

Two equivalent execution paths:
  * eager (training, evaluation): each task's rows run only through their own tower;
  * export (``torch.onnx`` tracing): every tower runs on every row and a one-hot of ``task_id``
    selects the result — no data-dependent control flow, so the ONNX graph takes ``task_id`` as
    an input. It costs (T−1)·k extra layers per row; the service scores one task per call anyway.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask


def _exporting() -> bool:
    return torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()


class PrivateTopLayers(nn.Module):
    """T towers of k transformer layers; row i runs through tower ``task_id[i]``."""

    def __init__(self, top_layers: nn.ModuleList, *, n_tasks: int, config) -> None:
        super().__init__()
        self.config = config
        self.towers = nn.ModuleList([copy.deepcopy(top_layers) for _ in range(n_tasks)])

    def _run(self, tower: nn.ModuleList, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=attention_mask)
        for layer in tower:
            hidden = layer(hidden, mask)
        return hidden

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, task_id: torch.Tensor,
                *, select_all: bool | None = None) -> torch.Tensor:
        """hidden [n, s, h] from the shared layers → [n, s, h] after each row's private tower."""
        if select_all if select_all is not None else _exporting():
            stacked = torch.stack([self._run(tower, hidden, attention_mask) for tower in self.towers])  # [T, n, s, h]
            pick = nn.functional.one_hot(task_id, len(self.towers)).transpose(0, 1).to(hidden.dtype)  # [T, n]
            return (stacked * pick[:, :, None, None]).sum(0)
        out = hidden
        for task in torch.unique(task_id).tolist():
            rows = (task_id == task).nonzero(as_tuple=True)[0]
            routed = self._run(self.towers[task], hidden.index_select(0, rows), attention_mask.index_select(0, rows))
            out = out.index_copy(0, rows, routed)
        return out
