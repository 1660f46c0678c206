"""``shoprank train item-tower``: distil → export int8 → gate on validation → ship, or withdraw with the reason.

The exported version's card carries the teacher (the encoder version whose space it reproduces; the
service uses the tower only beside exactly that encoder), the held-out fidelity and the gate's figures
for validation (decides) and test (reported).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from service.settings import Settings
from training.item_tower.train import TowerConfig

log = logging.getLogger(__name__)

MAX_RECALL_DROP = 0.01  # issue 17: catalogue recall@100 through the funnel within 0.01 of the encoder's


def ship_item_tower(settings: Settings, *, tower_dir: Path, work_dir: Path, version: int,
                    max_drop: float = MAX_RECALL_DROP) -> dict:
    """Export ``tower_dir`` as ``<item_encoder_model>/<version>``, gate it, keep it only if it passes."""
    from training.export.onnx_export import export_encoder
    from training.item_tower.gate import gate, tower_item_vectors
    from training.item_tower.targets import item_targets

    name = settings.item_encoder_model
    trained = json.loads((tower_dir / "shoprank_student.json").read_text())
    titles, encoder_vectors, encoder_version = item_targets(settings, work_dir / "targets.npz")
    if trained.get("teacher") != encoder_version:
        raise ValueError(f"{tower_dir} was distilled from {trained.get('teacher')!r}, but {encoder_version} is served")
    card = {"kind": "encoder", "role": "item_tower", "teacher": encoder_version, "layers": trained["layers"],
            "held_out_cos": trained["held_out_cos"], "prefixes": trained.get("prefixes", {}),
            "source": f"item tower: layers {trained['layers']} of {encoder_version}, MSE-distilled onto its item "
                      "vectors (training/item_tower/)"}
    out = export_encoder(repo=settings.model_repo, name=name, version=version, source=str(tower_dir), card=card)
    tower_vectors = tower_item_vectors(settings, name, titles)
    np.save(work_dir / f"tower_vectors_v{version}.npy", tower_vectors)
    results = gate(settings, titles=titles, encoder_vectors=encoder_vectors, tower_vectors=tower_vectors)
    decided = next(r for r in results if r.split == "validation")
    card |= {"gate": {"max_recall_drop": max_drop, "passed": decided.passes(max_drop),
                      "funnel": f"{settings.funnel_dim}-d x{settings.index_shortlist_factor} -> 384-d "
                                f"({settings.index_full_precision})",
                      "results": [r.as_dict() for r in results]}}
    card_path = out / "shoprank.json"
    card_path.write_text(json.dumps(json.loads(card_path.read_text()) | card, indent=2))
    if not decided.passes(max_drop):
        withdrawn = work_dir / f"withdrawn-{name}-{version}"
        shutil.rmtree(withdrawn, ignore_errors=True)
        shutil.move(str(out), withdrawn)
        model_dir = out.parent
        if not any(p.is_dir() for p in model_dir.iterdir()):  # no version left: no model (a bare config.pbtxt
            shutil.rmtree(model_dir)                           # would make Triton load a model it cannot serve)
        log.warning("item tower withdrawn: validation recall@%d %.4f vs the encoder's %.4f (drop %.4f > %.4f); "
                    "kept in %s", decided.k, decided.tower_recall, decided.encoder_recall, decided.drop, max_drop,
                    withdrawn)
    return card["gate"]


def train_and_ship(settings: Settings, config: TowerConfig, *, work_dir: Path, version: int) -> dict:
    from training.item_tower.train import train_item_tower

    tower_dir = work_dir / f"tower-{''.join(str(layer) for layer in config.layers)}"
    history = train_item_tower(settings, tower_dir, config, work_dir=work_dir)
    return {"best_held_out_cos": history["best_held_out_cos"],
            "gate": ship_item_tower(settings, tower_dir=tower_dir, work_dir=work_dir, version=version)}
