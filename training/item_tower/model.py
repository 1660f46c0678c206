"""The item tower: the student's embeddings, a subset of its layers, mean pooling, its adaptor, L2.

Saved as a sentence-transformers directory (transformer, mean pooling, the adaptor as a bias-free
Dense, normalisation) so that ``training/export/onnx_export.export_encoder`` exports it exactly as it
exports a student, adaptor folded in.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch import nn
from transformers import BertModel

from training.base_model import base_model_path
from training.cross_encoder.model import mean_pool
from training.names import STUDENT_CARD


class ItemTower(nn.Module):
    """Texts' token ids → L2-normalised item vectors, the same graph the export traces."""

    def __init__(self, encoder: BertModel, projection: torch.Tensor | None) -> None:
        super().__init__()
        self.encoder = encoder
        dim = encoder.config.hidden_size
        self.projection = nn.Linear(dim, dim if projection is None else projection.shape[0], bias=False)
        with torch.no_grad():
            if projection is None:
                nn.init.eye_(self.projection.weight)
            else:
                self.projection.weight.copy_(projection)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return nn.functional.normalize(self.projection(mean_pool(hidden, attention_mask)), dim=-1)


def keep_layers(encoder: BertModel, layers: list[int]) -> BertModel:
    """A copy of ``encoder`` with only ``layers`` (in that order): the layer-drop initialisation."""
    config = encoder.config.__class__.from_dict(encoder.config.to_dict() | {"num_hidden_layers": len(layers)})
    small = BertModel(config, add_pooling_layer=False)
    small.embeddings.load_state_dict(encoder.embeddings.state_dict())
    for target, source in enumerate(layers):
        small.encoder.layer[target].load_state_dict(encoder.encoder.layer[source].state_dict())
    return small.eval()


def save_tower(tower: ItemTower, out_dir: Path, *, card: dict) -> Path:
    """A sentence-transformers dir of ``tower`` (what the export and ``eval-retrieval`` read)."""
    from sentence_transformers.sentence_transformer.modules import Dense

    out_dir.mkdir(parents=True, exist_ok=True)
    tower.encoder.save_pretrained(out_dir)
    base = Path(base_model_path())
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (base / name).exists():
            shutil.copy(base / name, out_dir / name)
    weight = tower.projection.weight.detach().clone()
    (out_dir / "2_Dense").mkdir(exist_ok=True)
    Dense(weight.shape[1], weight.shape[0], bias=False, activation_function=nn.Identity(),
          init_weight=weight).save(str(out_dir / "2_Dense"))
    (out_dir / "1_Pooling").mkdir(exist_ok=True)
    (out_dir / "3_Normalize").mkdir(exist_ok=True)
    (out_dir / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": tower.encoder.config.hidden_size, "pooling_mode_mean_tokens": True}))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 3, "name": "3", "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (out_dir / "modules.json").write_text(json.dumps(modules, indent=2))
    (out_dir / STUDENT_CARD).write_text(json.dumps(card, indent=2))
    return out_dir


def load_tower(tower_dir: Path) -> ItemTower:
    """A tower saved by ``save_tower`` (to continue training it)."""
    from sentence_transformers.sentence_transformer.modules import Dense
    from transformers import AutoModel

    dense = Dense.load(str(tower_dir / "2_Dense"))
    return ItemTower(AutoModel.from_pretrained(tower_dir, add_pooling_layer=False), dense.linear.weight.detach().clone())
