"""The one versioned apply (``service/versioned_apply.py``): the rule, the batch reduction, prepare / commit.

A stand-in encoder records what it was asked to embed; the index is the exact numpy reference. The
integration tests (replicas, indexer, model swap, write congruence) run the same code with the real models.
"""

from __future__ import annotations

import numpy as np
import pytest

from service.catalogue import stable_id
from service.index.exact import ExactIndex
from service.searchable import SearchableVersions
from service.store.base import ItemDocument
from service.versioned_apply import (
    ItemChange,
    apply_changes,
    commit,
    is_newer,
    newest_per_item,
    prepare,
    supersedes,
)

DIM = 8


class RecordingEncoder:
    model_version = "encoder:1"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts, *, kind="item"):
        self.seen += list(texts)
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(DIM) for t in texts]
        return np.array(rows, dtype=np.float32).reshape(len(texts), DIM)


class FailingEncoder(RecordingEncoder):
    def encode(self, texts, *, kind="item"):
        raise ConnectionError("triton down")


def doc(item_id: str, version: int, title: str) -> ItemDocument:
    return ItemDocument(item_id=item_id, version=version, title=title)


def upsert(item_id: str, version: int, title: str, **kw) -> ItemChange:
    return ItemChange(item_id, version, doc(item_id, version, title), **kw)


def test_the_rule() -> None:
    assert is_newer(1, None) and is_newer(2, 1)
    assert not is_newer(1, 1) and not is_newer(0, 1)
    assert supersedes(1, 1) and supersedes(2, 1) and supersedes(0, None) and not supersedes(0, 1)


def test_newest_per_item_keeps_the_highest_version_and_a_later_tie() -> None:
    first, tie = upsert("a", 2, "first"), upsert("a", 2, "tie")
    out = newest_per_item([upsert("a", 1, "old"), first, upsert("b", 1, "lamp"), tie, upsert("a", 1, "late old")])
    assert [(c.item_id, c.version, c.doc.title) for c in out] == [("a", 2, "tie"), ("b", 1, "lamp")]


def test_an_unchanged_text_borrows_the_vector_of_the_change_it_follows_in_the_batch() -> None:
    vector = np.ones(DIM, np.float32)
    titled = upsert("a", 3, "red chair", vector=vector, encoder="encoder:1")
    priced = upsert("a", 4, "red chair")
    (out,) = newest_per_item([titled, priced])
    assert out.version == 4 and out.vector is vector and out.encoder == "encoder:1"
    (other,) = newest_per_item([titled, upsert("a", 4, "green chair")])
    assert other.vector is None  # another text: nothing to borrow


def test_apply_skips_stale_reuses_held_text_and_embeds_the_rest() -> None:
    index, versions, encoder = ExactIndex(DIM), SearchableVersions(), RecordingEncoder()
    first = apply_changes([upsert("a", 1, "red chair"), upsert("b", 1, "blue lamp")], index=index,
                          versions=versions, encoder=encoder)
    assert first.upserted == ["a", "b"] and first.embedded == 2 and len(index) == 2
    encoder.seen.clear()
    again = apply_changes([upsert("a", 1, "red chair v1 again"), upsert("a", 2, "red chair"),
                           ItemChange("b", 2, deleted=True)], index=index, versions=versions, encoder=encoder)
    assert encoder.seen == [] and again.reused == 1 and again.deleted == ["b"] and again.stale == 0
    assert versions.searchable_version("a") == 2 and versions.searchable_version("b") is None and len(index) == 1
    late = apply_changes([upsert("b", 1, "blue lamp"), upsert("a", 2, "dup")], index=index, versions=versions,
                         encoder=encoder)
    assert late.stale == 2 and late.applied == [] and len(index) == 1  # a delete's version holds off older upserts


def test_logged_vectors_are_used_only_from_the_same_encoder() -> None:
    index, versions, encoder = ExactIndex(DIM), SearchableVersions(), RecordingEncoder()
    mine = np.full(DIM, 0.5, np.float32)
    result = apply_changes([upsert("a", 1, "ours", vector=mine, encoder="encoder:1"),
                            upsert("b", 1, "theirs", vector=mine, encoder="encoder:0"),
                            ItemChange("c", 1, None, vector=mine, encoder="encoder:0")],
                           index=index, versions=versions, encoder=encoder)
    assert encoder.seen == ["theirs"] and (result.logged, result.embedded, result.skipped) == (1, 1, 1)
    found, vectors = index.vectors(np.array([stable_id("a")]))
    assert found[0] and np.allclose(vectors[0], mine / np.linalg.norm(mine))


def test_a_failing_encoder_changes_nothing() -> None:
    index, versions = ExactIndex(DIM), SearchableVersions()
    with pytest.raises(ConnectionError):
        prepare([upsert("a", 1, "red chair")], versions=versions, encoder=FailingEncoder(), dim=DIM)
    assert len(index) == 0 and versions.held_version(stable_id("a")) is None


def test_commit_only_writes_the_chosen_items() -> None:
    index, versions, encoder = ExactIndex(DIM), SearchableVersions(), RecordingEncoder()
    prepared = prepare([upsert("a", 1, "red chair"), upsert("b", 1, "blue lamp")], versions=versions,
                       encoder=encoder, dim=DIM)
    result = commit(prepared, index=index, versions=versions, only={"b"})
    assert result.upserted == ["b"] and len(index) == 1 and versions.held_version(stable_id("a")) is None
