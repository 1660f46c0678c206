"""The one versioned apply: the rule every write path uses, and the procedure that changes an item index.

Four paths change what ShopRank holds for an item, and they share this module:

- the **indexer** (``indexer/apply.py``) decides which events reach the vector log and the store
  (``is_newer`` against the store's versions);
- the **embedded writer** (``Runtime.apply_items``: ``PUT`` / ``DELETE`` without Kafka) and the **replica
  follower** (``service/stream/follower.py``: vector-log records) change a process's item index with
  ``prepare`` then ``commit``;
- the **model swap's catch-up** (``service/model_swap.py``) brings a re-embedded index up to the writes
  made meanwhile, with the same two steps against the new index's own versions.

The rule (``is_newer``): a change applies only when its version is greater than the one held (None:
never seen); within one batch the highest version per item decides, a later change winning a tie
(``newest_per_item``). Deletes keep their version, so an older upsert never resurrects an item. The
stores hold the same rule where it must be atomic: the in-memory store calls ``is_newer`` and the Redis
store's compare-and-set scripts are its server-side form (``service/store/redis_store.py``); the
write-congruence test (``tests/integration/test_write_congruence.py``) checks that every path ends in the
same state.

Two steps, so that a failing model call changes nothing: ``prepare`` picks the changes newer than
what the index holds and makes their vectors (logged vectors from the same encoder are used as they are;
a change whose text the index already holds keeps its vector, no model call; the rest are embedded), and
``commit`` writes the index, then the searchable versions (never ahead of the index), then the lexical
index. The embedded writer runs its store compare-and-set between the two and commits only the winners.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from service.catalogue import stable_id
from service.searchable import EMBEDDINGS, SearchableVersions
from service.store.base import ItemDocument

if TYPE_CHECKING:  # the stores import the rule; keep this module's imports light
    from service.index.base import VectorIndex
    from service.lexical import LexicalIndex


class ItemEncoder(Protocol):
    model_version: str

    def encode(self, texts: list[str], *, kind: str = "item") -> np.ndarray: ...


def is_newer(version: int, held: int | None) -> bool:
    """The version rule of every write path: ``version`` applies over ``held`` (None = nothing held)."""
    return held is None or version > held


def supersedes(version: int, current: int | None) -> bool:
    """Within one batch, a later change replaces the current one at the same or a higher version."""
    return current is None or version >= current


@dataclass(frozen=True)
class ItemChange:
    """One change to an item: an upsert (``doc``, maybe a ready ``vector``) or a delete."""

    item_id: str
    version: int
    doc: ItemDocument | None = None
    """The document; None for a delete, or for a vector-log record that came without it."""
    deleted: bool = False
    vector: np.ndarray | None = None
    """A vector made elsewhere (the vector log); used only when ``encoder`` is the encoder applying it."""
    encoder: str | None = None
    event_ms: int | None = None
    """When the change was made at its source (the event's timestamp), for freshness metrics."""

    @property
    def vid(self) -> int:
        return stable_id(self.item_id)


def newest_per_item(changes: Iterable[ItemChange]) -> list[ItemChange]:
    """The highest version per item (a later change wins a tie), in first-seen item order.

    An upsert that brings no vector may take the vector of an older change to the same item in the same
    batch when that change carries exactly its text (a price-only update right behind the title change
    it follows, in one poll): otherwise it would be checked against the older text the index still holds
    and embedded again."""
    newest: dict[str, ItemChange] = {}
    with_vector: dict[str, ItemChange] = {}  # per item, the newest change that sets the vector (or deletes)
    for change in changes:
        held = newest.get(change.item_id)
        if supersedes(change.version, None if held is None else held.version):
            newest[change.item_id] = change
        if change.vector is not None or change.deleted:
            under = with_vector.get(change.item_id)
            if supersedes(change.version, None if under is None else under.version):
                with_vector[change.item_id] = change
    out = []
    for item_id, change in newest.items():
        under = with_vector.get(item_id)
        if (change.vector is None and not change.deleted and change.doc is not None and under is not None
                and under.vector is not None and under.doc is not None and is_newer(change.version, under.version)
                and under.doc.text == change.doc.text):
            change = ItemChange(change.item_id, change.version, change.doc, vector=under.vector,
                                encoder=under.encoder, event_ms=change.event_ms)
        out.append(change)
    return out


@dataclass(frozen=True)
class ApplyResult:
    """What one apply did; the one result type of every write path (the indexer's fills every field)."""

    upserted: list[str] = field(default_factory=list)
    """Items whose upsert was applied (their newest version in the batch)."""
    deleted: list[str] = field(default_factory=list)
    stale: int = 0
    """Changes dropped because their version was not newer than the one held."""
    not_stored: int = 0
    """Changes that lost the store's compare-and-set to a concurrent writer."""
    embedded: int = 0
    """Upserts embedded here (texts sent to the model)."""
    reused: int = 0
    """Upserts whose text was unchanged: the held vector stays, no model call."""
    logged: int = 0
    """Upserts whose vector came ready from the vector log."""
    skipped: int = 0
    """Upserts that could not be applied: a logged vector from another encoder and no document to embed."""
    seconds: float = 0.0
    applied: list[ItemChange] = field(default_factory=list, repr=False)
    """The changes applied, in order (what followers report to their callers)."""


@dataclass(frozen=True)
class PreparedChanges:
    """``prepare``'s output: nothing has changed yet."""

    upserts: list[ItemChange]
    vectors: np.ndarray
    """Unit vectors for ``upserts``, row for row."""
    kept: list[ItemChange]
    """Upserts whose text the index holds: the version advances, the vector stays."""
    deletes: list[ItemChange]
    stale: int
    embedded_rows: frozenset[int]
    """Rows of ``upserts`` embedded here (the others came with a usable logged vector)."""
    skipped: int
    started: float


def prepare(changes: Iterable[ItemChange], *, versions: SearchableVersions, encoder: ItemEncoder,
            dim: int) -> PreparedChanges:
    """The changes newer than what the index holds (``versions``), with their vectors; changes no state.

    Raises whatever the encoder raises (an unreachable Triton): the caller has changed nothing yet."""
    started = time.perf_counter()
    newest = newest_per_item(changes)
    fresh = [c for c in newest if is_newer(c.version, versions.held_version(c.vid))]
    deletes = [c for c in fresh if c.deleted]
    kept = [c for c in fresh if not c.deleted and c.vector is None and c.doc is not None
            and versions.holds_text(c.vid, c.doc.text)]
    kept_ids = {id(c) for c in kept}
    candidates = [c for c in fresh if not c.deleted and id(c) not in kept_ids]
    upserts = [c for c in candidates if c.doc is not None or usable_vector(c, encoder, dim)]
    vectors = np.zeros((len(upserts), dim), np.float32)
    to_embed = []
    for row, change in enumerate(upserts):
        if usable_vector(change, encoder, dim):
            vectors[row] = change.vector[:dim]
        else:
            to_embed.append(row)
    if to_embed:
        vectors[to_embed] = encoder.encode([upserts[row].doc.text for row in to_embed], kind="item")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return PreparedChanges(upserts=upserts, vectors=vectors / np.maximum(norms, 1e-12), kept=kept, deletes=deletes,
                           stale=len(newest) - len(fresh), embedded_rows=frozenset(to_embed),
                           skipped=len(candidates) - len(upserts), started=started)


def usable_vector(change: ItemChange, encoder: ItemEncoder, dim: int) -> bool:
    """A logged vector is used as it is only when this process's encoder made it, at least ``dim`` wide."""
    return (change.vector is not None and change.encoder == encoder.model_version
            and change.vector.shape[0] >= dim)


def commit(prepared: PreparedChanges, *, index: VectorIndex, versions: SearchableVersions,
           lexical: LexicalIndex | None = None, only: Collection[str] | None = None) -> ApplyResult:
    """Write ``prepared`` (limited to the items in ``only`` when given): index, then versions, then lexical."""
    def chosen(changes: Sequence[ItemChange]) -> list[ItemChange]:
        return list(changes) if only is None else [c for c in changes if c.item_id in only]

    rows = [row for row, c in enumerate(prepared.upserts) if only is None or c.item_id in only]
    upserts = [prepared.upserts[row] for row in rows]
    kept, deletes = chosen(prepared.kept), chosen(prepared.deletes)
    if upserts:
        index.upsert(np.array([c.vid for c in upserts], dtype=np.int64), prepared.vectors[rows])
    if deletes:
        index.delete(np.array([c.vid for c in deletes], dtype=np.int64))
    # the versions move after the index, so GET /v1/items never reports a version the index lacks
    for change in upserts:
        versions.upserted(change.vid, change.version, None if change.doc is None else change.doc.text)
    for change in kept:
        versions.advanced(change.vid, change.version)
    for change in deletes:
        versions.deleted(change.vid, change.version)
    if lexical is not None:  # titles of changes without their document stay as they were
        lexical.upsert([(c.item_id, c.doc.title) for c in upserts + kept if c.doc is not None])
        lexical.delete([c.item_id for c in deletes])
    embedded = sum(1 for row in rows if row in prepared.embedded_rows)
    EMBEDDINGS.labels("embedded").inc(embedded)
    EMBEDDINGS.labels("logged").inc(len(upserts) - embedded)
    EMBEDDINGS.labels("reused").inc(len(kept))
    return ApplyResult(upserted=[c.item_id for c in upserts + kept], deleted=[c.item_id for c in deletes],
                       stale=prepared.stale, embedded=embedded, reused=len(kept), logged=len(upserts) - embedded,
                       skipped=prepared.skipped, seconds=time.perf_counter() - prepared.started, applied=upserts + kept + deletes)


def apply_changes(changes: Iterable[ItemChange], *, index: VectorIndex, versions: SearchableVersions,
                  encoder: ItemEncoder, lexical: LexicalIndex | None = None) -> ApplyResult:
    """``prepare`` then ``commit`` everything (the replica follower; the model swap's catch-up)."""
    return commit(prepare(changes, versions=versions, encoder=encoder, dim=index.dim), index=index,
                  versions=versions, lexical=lexical)
