"""The served encoder's item vectors for every catalogue title: what the tower learns to reproduce.

Computed through ``service.inference`` at the served precision (int8 ONNX, full width, ``kind="item"``),
i.e. exactly the vectors the index holds today, so the tower lands in the space the query encoder
searches. Cached in ``<work_dir>/targets.npz`` per encoder version; the first-phase step's ``embeddings.npz``
beside it (same encoder, same texts) is reused when present.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from service.settings import Settings

log = logging.getLogger(__name__)


def item_targets(settings: Settings, cache: Path) -> tuple[list[str], np.ndarray, str]:
    """(titles, [n, 384] served vectors, the encoder's model version); ``cache`` is written once and reused."""
    from service.catalogue import load_catalogue
    from training.first_phase.embed import encode_texts, full_width_encoder

    encoder = full_width_encoder(settings.model_copy(update={"item_encoder_model": ""}))  # the teacher, never a tower
    version = encoder.model_version
    titles = sorted(set(load_catalogue(settings.data_dir).item_titles))
    for path in (cache, cache.parent.parent / "first_phase" / "embeddings.npz"):  # the first phase's, same vectors
        if path.exists():
            saved = np.load(path)
            if str(saved["encoder"]) == version and set(titles) <= set(saved["item_texts"].tolist()):
                row = {t: i for i, t in enumerate(saved["item_texts"].tolist())}
                log.info("item targets: %d titles from %s (%s)", len(titles), path, version)
                matrix = saved["item_vectors"][[row[t] for t in titles]].astype(np.float32)
                break
    else:
        vectors = encode_texts(encoder, titles, kind="item")
        matrix = np.stack([vectors[t] for t in titles]).astype(np.float32)
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, encoder=version, item_texts=np.array(titles), item_vectors=matrix)
    return titles, matrix, version
