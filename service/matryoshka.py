"""The Matryoshka cut: how every part of ShopRank shortens a student vector to fewer dimensions."""

from __future__ import annotations

import numpy as np


def matryoshka_cut(vectors: np.ndarray, dim: int) -> np.ndarray:
    """The first ``dim`` coordinates, L2-normalised again (a cut of a unit vector is not a unit vector).

    MatryoshkaLoss trains each prefix as an embedding of its own, compared by cosine; this is that prefix.
    """
    cut = np.ascontiguousarray(vectors[:, :dim], dtype=np.float32)
    return cut / np.maximum(np.linalg.norm(cut, axis=1, keepdims=True), 1e-12)
