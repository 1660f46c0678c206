"""The store seam: item documents with per-item versions, and the keyphrase recommendation cache.

Implementations: ``memory.MemoryStore`` (in process, the embedded default) and
``redis_store.RedisStore`` (``SHOPRANK_REDIS_URL`` set). Versions make writes idempotent:
``put_item``/``delete_item`` with a version not newer than the stored one are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from pydantic import BaseModel, Field

from service.catalogue import text_hash


class ItemDocument(BaseModel):
    """What the service keeps about one item (the event's payload without its ``type``)."""

    item_id: str
    version: int = 0
    title: str
    category: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict)
    price: float | None = None
    updated_at: str | None = None

    @property
    def text(self) -> str:
        """The text the item tower embeds and the ranker reads."""
        return f"{self.title} | {self.category}" if self.category else self.title


class KeyphraseRecommendation(BaseModel):
    keyphrase: str
    score: float
    p_partial_or_better: float
    p_exact: float
    expected: float
    label: str
    phase: int = 2  # 1 = scored by the first phase only, 2 = by the ranker (phased ranking)


class CachedRecommendations(BaseModel):
    """An item's keyphrases as computed for one version of it, by one set of served models.

    They depend only on the item's text and the models, so they stay valid across versions that keep the
    text (price- and attribute-only changes, most of a catalogue's updates): ``text_hash`` says which text."""

    item_id: str
    item_version: int
    model_version: str
    keyphrases: list[KeyphraseRecommendation]
    text_hash: int | None = None  # ``service.catalogue.text_hash`` of the item text; None: written before it existed

    def describes(self, doc: ItemDocument, model_version: str) -> bool:
        """True when these keyphrases are what the models of ``model_version`` recommend for ``doc`` now."""
        if self.model_version != model_version:
            return False
        return self.item_version == doc.version or (self.text_hash is not None and self.text_hash == text_hash(doc.text))


class ItemStore(Protocol):
    def get_items(self, item_ids: list[str]) -> list[ItemDocument | None]: ...

    def item_version(self, item_id: str) -> int | None:
        """Latest version seen for the item, deletes included (tombstones keep their version)."""
        ...

    def put_items(self, docs: list[ItemDocument]) -> list[bool]:
        """Store docs whose version is newer than the stored one; True where applied."""
        ...

    def delete_items(self, item_ids: list[str], versions: list[int]) -> list[bool]:
        """Tombstone items at a version newer than the stored one; True where applied."""
        ...

    def item_ids_for_vectors(self, vector_ids: list[int]) -> list[str | None]:
        """Resolve index ids (``stable_id(item_id)``) back to item ids."""
        ...

    def count(self) -> int: ...

    def iter_items(self, *, batch: int = 1000) -> Iterator[list[ItemDocument]]:
        """Every live document, ``batch`` at a time (re-embedding after an encoder swap reads these)."""
        ...

    def put_recommendations(self, recs: list[CachedRecommendations]) -> None: ...

    def get_recommendations(self, item_id: str) -> CachedRecommendations | None:
        """A caller asked for this item's keyphrases: the cached ones, whose life this request extends by
        ``keyphrase_cache_ttl_s`` (what is asked for stays cached, and refreshed by ``indexer recommend``)."""
        ...

    def peek_recommendations(self, item_ids: list[str]) -> list[CachedRecommendations | None]:
        """The cached keyphrases per item, without extending their life (the write path's look)."""
        ...

    def close(self) -> None: ...
