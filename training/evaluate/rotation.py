"""An orthogonal rotation of an embedding space that puts its highest-energy directions first.

Cosine similarity at full width is unchanged by any rotation, but a Matryoshka cut after the rotation
keeps the top principal directions (of the uncentred second moment, since the vectors are compared by
cosine, not after centring) instead of the first coordinates. ``shoprank eval-retrieval --rotation``
measures whether that beats the student's own Matryoshka prefix at each cut. numpy's ``eigh`` does the
work; scikit-learn's PCA centres the data, which a cosine index cannot undo.
"""

from __future__ import annotations

import numpy as np


def energy_rotation(vectors: np.ndarray) -> np.ndarray:
    """[d, d] orthogonal matrix whose columns are the eigenvectors of E[x xᵀ], by decreasing eigenvalue.

    ``vectors @ rotation`` rotates row vectors; its first k columns carry the most energy any k
    orthogonal directions can."""
    x = np.asarray(vectors, dtype=np.float64)
    _, eigenvectors = np.linalg.eigh(x.T @ x / max(len(x), 1))
    return eigenvectors[:, ::-1].astype(np.float32)
