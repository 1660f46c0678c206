"""Searchable versions and the no-re-embed path, with a stand-in encoder (the real models run in tests/integration).

Checks the three places a version reaches an index without a model call when only the price (or
another attribute) changed: the indexer's apply (an *advance* record instead of a vector), the replica
follower (keeps the vector it holds, or re-embeds when it holds another text) and the embedded write
path (``Runtime.apply_items``); and that the map survives a save / load beside a snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from indexer.apply import apply_batch
from indexer.batcher import Batch, Consumed
from service.catalogue import stable_id, text_hash
from service.index.exact import ExactIndex
from service.searchable import SearchableVersions
from service.settings import Settings
from service.store.base import ItemDocument
from service.store.memory import MemoryStore
from service.stream.events import DeleteEvent, UpsertEvent
from service.stream.follower import ReplicaFollower
from service.stream.vector_log import VectorRecord, decode_record, encode_record
from tests.unit.test_runtime_apply import DIM, HashEncoder, doc, runtime


class Raw(NamedTuple):
    """The fields of a Kafka record the follower reads."""

    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list


class Sink:
    def __init__(self) -> None:
        self.records: list[VectorRecord] = []

    def publish(self, records, *, encoder_version: str) -> None:
        self.records += [decode_record(r.item_id.encode(), encode_record(r)) for r in records]


def batch(*events) -> Batch:
    consumed = [Consumed(e, "items", 0, n, 1_000 + n) for n, e in enumerate(events)]
    return Batch(events=consumed, next_offsets={("items", 0): len(events)}, consumed=len(events))


def up(item_id: str, version: int, title: str, price: float | None = None) -> UpsertEvent:
    return UpsertEvent(type="upsert", item_id=item_id, version=version, title=title, price=price)


def test_advance_record_round_trips_and_needs_its_document() -> None:
    item = ItemDocument(item_id="a", version=3, title="red chair", price=9.5)
    back = decode_record(b"a", encode_record(VectorRecord("a", 3, 7, None, item, advance=True)))
    assert back.advance and not back.deleted and back.vector is None and back.doc == item
    with pytest.raises(ValueError):
        encode_record(VectorRecord("a", 3, 7, None, None, advance=True))


def test_indexer_publishes_price_only_updates_without_a_model_call() -> None:
    store, encoder, sink = MemoryStore(), HashEncoder(), Sink()
    first = apply_batch(batch(up("a", 1, "red chair", 10.0), up("b", 1, "blue lamp")),
                        store=store, encoder=encoder, sink=sink)
    assert (first.embedded, first.reused) == (2, 0) and encoder.seen == ["red chair", "blue lamp"]
    encoder.seen.clear()
    second = apply_batch(batch(up("a", 2, "red chair", 12.0), up("b", 2, "blue lamp v2")),
                         store=store, encoder=encoder, sink=sink)
    assert (second.embedded, second.reused) == (1, 1) and encoder.seen == ["blue lamp v2"]
    advance = sink.records[-2]
    assert advance.advance and advance.version == 2 and advance.doc.price == 12.0
    assert store.get_items(["a"])[0].price == 12.0 and store.item_version("a") == 2  # the document moved on
    # re-delivery of the same batch is stale: nothing embedded, nothing published
    again = apply_batch(batch(up("a", 2, "red chair", 12.0)), store=store, encoder=encoder, sink=sink)
    assert again.stale == 1 and (again.embedded, again.reused) == (0, 0) and len(sink.records) == 4
    # a deleted item's next upsert is embedded (a tombstone holds no text)
    apply_batch(batch(DeleteEvent(type="delete", item_id="a", version=3)), store=store, encoder=encoder, sink=sink)
    encoder.seen.clear()
    back = apply_batch(batch(up("a", 4, "red chair")), store=store, encoder=encoder, sink=sink)
    assert back.embedded == 1 and encoder.seen == ["red chair"] and not sink.records[-1].advance


def test_advances_and_deletes_are_durable_before_the_batch_is_encoded() -> None:
    store, sink = MemoryStore(), Sink()

    class Watching(HashEncoder):
        def encode(self, texts, *, kind: str = "item"):
            if texts:  # by now the no-model part of the batch is in the log and the store
                assert [r.item_id for r in sink.records[-2:]] == ["a", "b"] and store.item_version("a") == 2
            return super().encode(texts, kind=kind)

    apply_batch(batch(up("a", 1, "red chair"), up("b", 1, "blue lamp")), store=store, encoder=HashEncoder(), sink=sink)
    result = apply_batch(batch(up("c", 1, "green sofa"), up("a", 2, "red chair", 9.0),
                               DeleteEvent(type="delete", item_id="b", version=2)),
                         store=store, encoder=Watching(), sink=sink)
    assert (result.embedded, result.reused) == (1, 1) and sorted(result.upserted) == ["a", "c"]
    assert result.deleted == ["b"] and [r.item_id for r in sink.records[-3:]] == ["a", "b", "c"]


def follower(index=None, versions=None) -> ReplicaFollower:
    return ReplicaFollower(settings=Settings(), index=index or ExactIndex(DIM), store=MemoryStore(),
                           encoder=HashEncoder(), local_store=True, snapshot_dir=Path("/nonexistent/r"),
                           versions=versions or SearchableVersions())


def raw(offset: int, record: VectorRecord, encoder: str = "encoder:test") -> Raw:
    return Raw(0, offset, record.item_id.encode(), encode_record(record), [("encoder", encoder.encode())])


def test_follower_keeps_the_vector_on_an_advance_and_re_embeds_another_text() -> None:
    f = follower()
    enc = HashEncoder()
    chair = ItemDocument(item_id="a", version=1, title="red chair")
    f.apply([raw(0, VectorRecord("a", 1, 0, enc.encode(["red chair"])[0], chair))])
    assert f.state.versions.searchable_version("a") == 1 and f.encoder.seen == []
    f.apply([raw(1, VectorRecord("a", 2, 0, None, chair.model_copy(update={"version": 2, "price": 5.0}),
                                 advance=True))])
    assert f.state.versions.searchable_version("a") == 2 and f.encoder.seen == []  # no model call
    assert f.store.get_items(["a"])[0].price == 5.0
    # an advance whose text this index does not hold (e.g. a compacted log) is re-embedded here
    lamp = ItemDocument(item_id="b", version=3, title="blue lamp")
    f.apply([raw(2, VectorRecord("b", 3, 0, None, lamp, advance=True))])
    assert f.encoder.seen == ["blue lamp"] and f.state.versions.searchable_version("b") == 3
    _, ids = f.index.search(enc.encode(["blue lamp"]), 1)
    assert ids[0][0] == stable_id("b")
    # stale and deleted
    f.apply([raw(3, VectorRecord("a", 1, 0, enc.encode(["old"])[0], chair))])
    assert f.state.versions.searchable_version("a") == 2
    f.apply([raw(4, VectorRecord("a", 5, 0))])
    assert f.state.versions.searchable_version("a") is None and f.state.versions.version(stable_id("a")) == 5
    assert len(f.index) == 1


def test_an_advance_polled_with_its_vector_needs_no_model_call() -> None:
    f, enc = follower(), HashEncoder()
    seed = ItemDocument(item_id="a", version=0, title="red chair")
    f.apply([raw(0, VectorRecord("a", 0, 0, enc.encode(["red chair"])[0], seed))])
    renamed = ItemDocument(item_id="a", version=1, title="green chair")
    f.apply([raw(1, VectorRecord("a", 1, 0, enc.encode(["green chair"])[0], renamed)),
             raw(2, VectorRecord("a", 2, 0, None, renamed.model_copy(update={"version": 2, "price": 4.0}),
                                 advance=True))])
    assert f.encoder.seen == [] and f.state.versions.searchable_version("a") == 2
    assert f.state.versions.holds_text(stable_id("a"), "green chair") and f.store.get_items(["a"])[0].price == 4.0
    _, ids = f.index.search(enc.encode(["green chair"]), 1)
    assert ids[0][0] == stable_id("a")


def test_embedded_writes_advance_without_encoding_when_the_text_is_unchanged() -> None:
    rt = runtime()
    rt.apply_items(upserts=[doc("a", 1, "red chair")])
    assert rt.searchable.searchable_version("a") == 1
    rt.encoder.seen.clear()
    priced = ItemDocument(item_id="a", version=2, title="red chair", price=3.0, attributes={"colour": "red"})
    assert rt.apply_items(upserts=[priced]).upserted == ["a"]
    assert rt.encoder.seen == [] and rt.searchable.searchable_version("a") == 2
    assert rt.store.get_items(["a"])[0].price == 3.0
    # two versions in one call: the highest decides, even when an earlier one changed the text
    rt.apply_items(upserts=[doc("a", 3, "green chair"), doc("a", 4, "red chair")])
    assert rt.encoder.seen == [] and rt.searchable.searchable_version("a") == 4
    rt.apply_items(upserts=[doc("a", 5, "green chair")])
    assert rt.encoder.seen == ["green chair"]
    rt.apply_items(deletes=[("a", 6)])
    assert rt.searchable.searchable_version("a") is None and len(rt.items) == 0


def test_versions_save_and_load(tmp_path) -> None:
    versions = SearchableVersions.of_docs([doc("a", 0, "red chair"), doc("b", 0, "blue lamp")])
    versions.deleted(stable_id("b"), 4)
    versions.upserted(stable_id("c"), 2, None)
    versions.save(tmp_path / "v.npz")
    back = SearchableVersions.load(tmp_path / "v.npz")
    assert back.held(stable_id("a")) == (0, text_hash("red chair")) and back.holds_text(stable_id("a"), "red chair")
    assert back.searchable_version("b") is None and back.version(stable_id("b")) == 4
    assert back.searchable_version("c") == 2 and not back.holds_text(stable_id("c"), "")
    np.savez(tmp_path / "old.npz", vids=np.array([1]), versions=np.array([1]))  # before text hashes: refused
    with pytest.raises(KeyError):
        SearchableVersions.load(tmp_path / "old.npz")
