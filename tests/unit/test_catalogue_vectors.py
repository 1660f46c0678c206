"""How the service takes seed vectors from batch-embed Parquet (``service/catalogue_vectors.py``), without Spark.

The embed function is a stand-in that records what it was asked (plumbing only); the real encoder and Spark
output are checked in ``tests/integration/test_batch_embed.py``.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from service.catalogue import stable_id, text_hash
from service.catalogue_vectors import pack_vector, seed_vectors, unpack_vectors
from service.store.base import ItemDocument

DIM = 8


def _unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _write(path, docs, vectors, model_version="encoder:4", texts=None) -> None:
    texts = texts or [doc.text for doc in docs]
    pq.write_table(pa.table({
        "item_id": [doc.item_id for doc in docs], "version": [0] * len(docs),
        "text_hash": [text_hash(t) for t in texts], "title": [doc.title for doc in docs],
        "category": [doc.category for doc in docs], "vector": [pack_vector(v) for v in vectors],
        "model_version": [model_version] * len(docs)}), path)


class Recorder:
    """Stands in for the encoder: unit vectors of ones, and the texts it was asked to embed."""

    def __init__(self, dim: int = DIM) -> None:
        self.texts: list[str] = []
        self.dim = dim

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        return np.full((len(texts), self.dim), 1 / np.sqrt(self.dim), np.float32)


def test_float16_cells_keep_the_vector() -> None:
    vectors = _unit(np.random.default_rng(0), 50, 384)
    back = unpack_vectors([pack_vector(v) for v in vectors])
    assert back.dtype == np.float32 and back.shape == (50, 384)
    assert np.min(np.sum(back * vectors, axis=1)) > 0.99999
    assert len(pack_vector(vectors[0])) == 768  # 2 bytes per coordinate


def test_rows_of_the_served_model_and_same_text_are_taken_the_rest_embedded(tmp_path, caplog) -> None:
    docs = [ItemDocument(item_id=f"i{n}", title=f"title {n}") for n in range(6)]
    vectors = _unit(np.random.default_rng(1), 6)
    texts = [doc.text for doc in docs]
    texts[2] = "an older title"  # the file's vector for i2 is of another text
    _write(tmp_path / "v.parquet", docs[:5], vectors[:5], texts=texts[:5])  # i5 is not in the file
    embed = Recorder()
    with caplog.at_level(logging.INFO, logger="service.catalogue_vectors"):
        ids, got = seed_vectors(tmp_path / "v.parquet", docs, model_version="encoder:4", dim=DIM, embed=embed)
    assert ids.tolist() == [stable_id(doc.item_id) for doc in docs]
    assert embed.texts == ["title 2", "title 5"]
    for row in (0, 1, 3, 4):
        assert np.dot(got[row], vectors[row]) > 0.9999
    assert np.allclose(got[[2, 5]], 1 / np.sqrt(DIM))
    assert "4 of 6 seed items from" in caplog.text


def test_another_model_version_embeds_everything_and_says_so(tmp_path, caplog) -> None:
    docs = [ItemDocument(item_id=f"i{n}", title=f"title {n}") for n in range(3)]
    _write(tmp_path / "v.parquet", docs, _unit(np.random.default_rng(2), 3), model_version="encoder:3")
    embed = Recorder()
    with caplog.at_level(logging.WARNING, logger="service.catalogue_vectors"):
        _, got = seed_vectors(tmp_path / "v.parquet", docs, model_version="encoder:4", dim=DIM, embed=embed)
    assert embed.texts == [doc.text for doc in docs] and np.allclose(got, 1 / np.sqrt(DIM))
    assert "made by ['encoder:3'], but encoder:4 is served: embedding all 3 seed items" in caplog.text


def test_longer_vectors_are_cut_like_the_encoder_cuts_them(tmp_path) -> None:
    docs = [ItemDocument(item_id="a", title="a")]
    full = _unit(np.random.default_rng(3), 1, 2 * DIM)
    _write(tmp_path / "v.parquet", docs, full)
    _, got = seed_vectors(tmp_path / "v.parquet", docs, model_version="encoder:4", dim=DIM, embed=Recorder())
    expected = full[0, :DIM] / np.linalg.norm(full[0, :DIM])
    assert got.shape == (1, DIM) and np.dot(got[0], expected) > 0.9999
