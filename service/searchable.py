"""What this replica's item index holds per item: the version and the hash of the text its vector was made from.

``GET /v1/items/{id}`` answers ``searchable_version`` from here without a model call, and every path that
changes the item index updates it right after the index (``Runtime.apply_items`` for embedded writes, the
replica follower for the vector log, the model swap's re-embedding), so it never claims a version the index
does not hold yet. The text hash lets a write whose embedded text did not change (a price-only or
attribute-only update) advance the version without re-embedding: the comparison is against the text of
the vector *this index* holds, not against the stored document, which may be ahead of or behind it.

The map is snapshotted with the index (replica snapshots) and seeded at start-up with version 0 for the
catalogue the seed index was built from, so a restored index reports the versions it holds.
Entries are ``stable_id(item) → (version, text hash)``; a delete keeps its version with hash ``None``
(the follower must still refuse older records), and ``UNKNOWN_TEXT`` marks a vector whose text is not
known (a log record without its document), which never matches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from service.catalogue import stable_id, text_hash
from service.store.base import ItemDocument

REGISTRY = CollectorRegistry()
"""The replica's metrics (the follower's and the apply path's); the API's ``/metrics`` appends it."""
EMBEDDINGS = Counter(
    "shoprank_replica_item_embeddings_total",
    "Item vectors this process's index received, by outcome: embedded here (a model call), reused (text "
    "unchanged: version advanced, no model call) or logged (copied from the vector log)",
    ["outcome"], registry=REGISTRY)

UNKNOWN_TEXT = 0
"""Hash for a held vector whose text is unknown: never equal to a real text's hash (2⁻⁶⁴ aside)."""


class SearchableVersions:
    """Thread-safe ``stable_id → (version, text hash | None)``; one writer at a time, readers any time."""

    def __init__(self, entries: dict[int, tuple[int, int | None]] | None = None) -> None:
        self._entries: dict[int, tuple[int, int | None]] = dict(entries or {})
        self._lock = threading.Lock()

    @classmethod
    def of_docs(cls, docs: Iterable[ItemDocument]) -> SearchableVersions:
        """The map of an index built from these documents (the seed catalogue at version 0, a re-embedding)."""
        return cls({stable_id(doc.item_id): (doc.version, text_hash(doc.text)) for doc in docs})

    # --- reads
    def held(self, vid: int) -> tuple[int, int | None] | None:
        """(version, text hash) for an index id; hash None = deleted at that version; None = never seen."""
        return self._entries.get(vid)

    def held_version(self, vid: int) -> int | None:
        """The newest version applied here, deletes included; None when the item was never seen."""
        held = self._entries.get(vid)
        return None if held is None else held[0]

    def version(self, vid: int, default: int = -1) -> int:
        """The newest version applied here, deletes included (what the follower compares records with)."""
        held = self._entries.get(vid)
        return default if held is None else held[0]

    def searchable_version(self, item_id: str) -> int | None:
        """The version this index holds a vector for; None if it holds none (never seen, or deleted)."""
        held = self._entries.get(stable_id(item_id))
        return None if held is None or held[1] is None else held[0]

    def holds_text(self, vid: int, text: str) -> bool:
        """True when the index holds a vector for ``vid`` made from exactly ``text``."""
        held = self._entries.get(vid)
        return held is not None and held[1] is not None and held[1] == text_hash(text)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Iterator[tuple[int, tuple[int, int | None]]]:
        with self._lock:
            return iter(list(self._entries.items()))

    # --- writes (call after the index changed)
    def upserted(self, vid: int, version: int, text: str | None) -> None:
        with self._lock:
            self._entries[vid] = (version, UNKNOWN_TEXT if text is None else text_hash(text))

    def advanced(self, vid: int, version: int) -> None:
        """A newer version with the same text: the held vector stays."""
        with self._lock:
            held = self._entries.get(vid)
            self._entries[vid] = (version, UNKNOWN_TEXT if held is None or held[1] is None else held[1])

    def deleted(self, vid: int, version: int) -> None:
        with self._lock:
            self._entries[vid] = (version, None)

    def replace_with(self, other: SearchableVersions) -> None:
        """Take ``other``'s entries (a restored snapshot's), keeping this object shared."""
        with self._lock:
            self._entries = dict(other._entries)

    def forget(self, vid: int) -> None:
        with self._lock:
            self._entries.pop(vid, None)

    # --- persistence (beside the index snapshot)
    def save(self, path: Path) -> None:
        with self._lock:
            rows = list(self._entries.items())
        vids = np.fromiter((v for v, _ in rows), dtype=np.int64, count=len(rows))
        versions = np.fromiter((e[0] for _, e in rows), dtype=np.int64, count=len(rows))
        present = np.fromiter((e[1] is not None for _, e in rows), dtype=bool, count=len(rows))
        hashes = np.fromiter((e[1] or 0 for _, e in rows), dtype=np.int64, count=len(rows))
        with Path(path).open("wb") as out:
            np.savez(out, vids=vids, versions=versions, present=present, hashes=hashes)

    @classmethod
    def load(cls, path: Path) -> SearchableVersions:
        """Raises ``KeyError`` for a file written before text hashes were kept (the caller replays the log)."""
        with np.load(path) as arrays:
            vids, versions = arrays["vids"].tolist(), arrays["versions"].tolist()
            present, hashes = arrays["present"].tolist(), arrays["hashes"].tolist()
        return cls({vid: (ver, h if p else None) for vid, ver, p, h in zip(vids, versions, present, hashes)})
