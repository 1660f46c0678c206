"""The energy rotation keeps full-width cosines and puts the most energy in the first cuts."""

import numpy as np

from service.matryoshka import matryoshka_cut
from training.evaluate.rotation import energy_rotation


def test_rotation_is_orthogonal_keeps_cosines_and_orders_energy():
    rng = np.random.default_rng(0)
    # energy concentrated in the LAST coordinates: a plain cut would keep the weakest directions
    vectors = rng.normal(size=(500, 16)) * np.linspace(0.1, 3.0, 16)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    turn = energy_rotation(vectors)
    assert np.allclose(turn.T @ turn, np.eye(16), atol=1e-5)
    rotated = vectors @ turn
    assert np.allclose(rotated @ rotated.T, vectors @ vectors.T, atol=1e-5)
    energy = (rotated ** 2).mean(axis=0)
    assert np.all(np.diff(energy) <= 1e-6)

    def kept(v: np.ndarray) -> float:
        return np.linalg.norm(v[:, :4], axis=1).mean()

    assert kept(rotated) > kept(vectors) + 0.3
    assert matryoshka_cut(rotated, 4).shape == (500, 4)
