"""Catalogue vectors made offline (``shoprank batch-embed``, ``indexer/batch_embed/``) and how the service reads them.

The batch job writes Parquet with one row per item: ``item_id``, ``version``, ``text_hash`` (``searchable.text_hash``
of the embedded text), ``title``, ``category``, ``vector`` and ``model_version`` (the encoder tag that made it,
as in index snapshots and the vector log). ``vector`` is the 384-d unit vector as little-endian float16 bytes:
768 B per item, cosine ≥ 0.99999 to the float32 vector, and exact enough for the 64-d funnel prefix; int8 with
one scale per vector would halve it but quantises the 64-d prefix with the scale of all 384 coordinates.

At start-up (``SHOPRANK_CATALOGUE_VECTORS``) the service takes a seed item's vector from the file when the row's
model version is the served encoder's and its text hash is the seed text's; every other seed item is embedded
as before, and the log says how many came from where.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from service.catalogue import stable_id, text_hash
from service.matryoshka import matryoshka_cut
from service.store.base import ItemDocument

log = logging.getLogger(__name__)

VECTOR_DTYPE = np.dtype("<f2")
COLUMNS = ("item_id", "version", "text_hash", "title", "category", "vector", "model_version")


def pack_vector(vector: np.ndarray) -> bytes:
    """One float32 vector → the Parquet ``vector`` cell (little-endian float16 bytes)."""
    return np.ascontiguousarray(vector, dtype=VECTOR_DTYPE).tobytes()


def unpack_vectors(cells: Sequence[bytes]) -> np.ndarray:
    """``vector`` cells → float32 rows, L2-normalised again (float16 rounding moves the norm by ~1e-4)."""
    if not cells:
        return np.zeros((0, 0), np.float32)
    vectors = np.frombuffer(b"".join(cells), dtype=VECTOR_DTYPE).reshape(len(cells), -1).astype(np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def read_vectors(path: Path, *, columns: Sequence[str] = ("item_id", "text_hash", "vector", "model_version")):
    """The batch output (a Parquet file or Spark's directory of part files) as a pyarrow table."""
    import pyarrow.parquet as pq

    return pq.read_table(str(path), columns=list(columns))


def seed_vectors(path: Path, docs: Sequence[ItemDocument], *, model_version: str, dim: int,
                 embed: Callable[[list[str]], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ids and ``dim``-d vectors for the seed documents: from ``path`` where the row matches, ``embed`` the rest.

    A row matches when it was made by ``model_version`` and from the document's very text (its hash); longer
    vectors are cut to ``dim`` as the encoder cuts them (``matryoshka_cut``).
    """
    ids = np.array([stable_id(doc.item_id) for doc in docs], dtype=np.int64)
    table = read_vectors(path)
    versions = table.column("model_version").to_pylist()
    usable = [row for row, version in enumerate(versions) if version == model_version]
    if not usable:
        made_by = sorted(set(versions))[:3]
        log.warning("catalogue vectors %s were made by %s, but %s is served: embedding all %d seed items instead",
                    path, made_by or "nothing (empty file)", model_version, len(docs))
        return ids, embed([doc.text for doc in docs])
    item_ids = table.column("item_id").to_pylist()
    hashes = table.column("text_hash").to_pylist()
    cells = table.column("vector").to_pylist()
    at = {item_ids[row]: row for row in usable}
    taken: list[int] = []  # positions in docs
    rows: list[int] = []  # their rows in the table
    for position, doc in enumerate(docs):
        row = at.get(doc.item_id)
        if row is not None and hashes[row] == text_hash(doc.text):
            taken.append(position)
            rows.append(row)
    loaded = unpack_vectors([cells[row] for row in rows])
    if rows and loaded.shape[1] < dim:
        log.warning("catalogue vectors %s are %d-d, the service serves %d-d: embedding all %d seed items instead",
                    path, loaded.shape[1], dim, len(docs))
        return ids, embed([doc.text for doc in docs])
    loaded = matryoshka_cut(loaded, dim) if rows else loaded
    rest = sorted(set(range(len(docs))) - set(taken))
    fresh = embed([docs[p].text for p in rest]) if rest else None
    vectors = np.zeros((len(docs), dim), np.float32)
    if rows:
        vectors[taken] = loaded
    if rest:
        vectors[rest] = fresh
    log.info("catalogue vectors: %d of %d seed items from %s (%s), %d embedded here (missing there, other text "
             "or other model)", len(taken), len(docs), path, model_version, len(rest))
    return ids, vectors
