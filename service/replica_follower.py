"""A service replica follows the vector log into its own in-memory index.

Every replica reads *all* partitions of the compacted ``item-vectors`` topic by manual
assignment (no consumer group: each replica needs every record, and nothing to rebalance)
and applies each record whose version is newer than the one its index holds. The per-item versions
(and the text hash of each held vector) live in the runtime's ``SearchableVersions``, which
``GET /v1/items/{id}`` reads; an *advance* record (same text, new version) moves the version and
keeps the held vector, or re-embeds the document here when the held vector has another text.
Periodic snapshots write the index, the per-item versions and the offsets they cover, so a restarted
replica loads the snapshot and replays only the log after it; a new replica with no snapshot
replays the compacted log from the start on top of the seed catalogue (version 0).

Readiness: ``start`` returns once the replica has applied the log up to the end it saw at
start-up, so a replica never serves an index that is older than the moment it came up.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from kafka import KafkaConsumer, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from service.catalogue import stable_id
from service.index.base import VectorIndex
from service.index.factory import index_layout, restore_index
from service.index.snapshots import write_atomic
from service.searchable import EMBEDDINGS, REGISTRY, SearchableVersions
from service.settings import Settings
from service.store.base import ItemDocument, ItemStore
from service.vector_log import VectorRecord, decode_record

log = logging.getLogger(__name__)

# REGISTRY (from service.searchable): the follower's metrics; the API's ``/metrics`` appends this registry.
APPLIED = Counter("shoprank_replica_records_applied_total", "Vector-log records applied to this replica's index",
                  ["kind"], registry=REGISTRY)
SKIPPED = Counter("shoprank_replica_records_skipped_total", "Vector-log records not applied (stale or unreadable)",
                  ["reason"], registry=REGISTRY)
LAG = Gauge("shoprank_replica_lag_records", "Vector-log records this replica has not applied yet", registry=REGISTRY)
EVENT_AGE = Histogram("shoprank_replica_event_age_seconds", "Item event create time → searchable in this replica",
                      buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 60.0), registry=REGISTRY)


@dataclass
class FollowerState:
    """What a snapshot must capture besides the index: versions and the offsets they reach."""

    versions: SearchableVersions = field(default_factory=SearchableVersions)
    """stable_id(item) → (version, text hash) held by the index, deletes included (items never seen here:
    -1; the seed catalogue is at 0 here and in the store, which the indexer checks first, so no record
    at version 0 reaches the log for them). The runtime's map, shared with ``GET /v1/items``."""
    offsets: dict[int, int] = field(default_factory=dict)
    """partition → next offset to read."""
    docs: dict[str, tuple[int, ItemDocument | None]] = field(default_factory=dict)
    """Only for a replica with its own in-process store: the documents the log changed."""


class ReplicaFollower:
    """Follows ``settings.kafka_vectors_topic`` into ``index`` (and ``store`` when it is local)."""

    def __init__(self, *, settings: Settings, index: VectorIndex, store: ItemStore, encoder,
                 local_store: bool, snapshot_dir: Path, versions: SearchableVersions | None = None,
                 on_applied: Callable[[list[VectorRecord], float], None] | None = None,
                 lexical=None) -> None:
        self.settings = settings
        self.lexical = lexical  # the runtime's LexicalIndex (service/lexical.py): follows the same records
        self.index = index
        self.store = store
        self.encoder = encoder
        self.local_store = local_store
        self.snapshot_dir = snapshot_dir
        self.on_applied = on_applied
        self.state = FollowerState(versions=versions if versions is not None else SearchableVersions())
        self.caught_up = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: KafkaConsumer | None = None
        self._snapshot_at = time.monotonic()
        self._lag_at = 0.0
        self._changed_since_snapshot = False

    # --- lifecycle
    def start(self, *, wait_s: float | None = 120.0) -> None:
        """Start the thread; with ``wait_s``, block until caught up (raise if not in time)."""
        self._thread = threading.Thread(target=self._run, name="replica-follower", daemon=True)
        self._thread.start()
        if wait_s is not None and not self.caught_up.wait(wait_s):
            raise TimeoutError(f"replica not caught up with {self.settings.kafka_vectors_topic} after {wait_s}s"
                               + (f": {self.error}" if self.error else ""))

    def close(self, *, snapshot: bool = True, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if snapshot and self._changed_since_snapshot:
            self.snapshot()

    # --- the loop
    def _run(self) -> None:
        try:
            self._consumer = self._assign()
            targets = self._consumer.end_offsets(list(self._consumer.assignment()))
            while not self._stop.is_set():
                polled = self._consumer.poll(timeout_ms=int(self.settings.replica_poll_timeout_s * 1000),
                                             max_records=2000)
                records = [rec for batch in polled.values() for rec in batch]
                if records:
                    self.apply(records)
                elif not self.caught_up.is_set() and self._reached(targets):
                    log.info("replica caught up: %d vectors, offsets %s", len(self.index), self.state.offsets)
                    self.caught_up.set()
                if time.monotonic() - self._snapshot_at >= self.settings.replica_snapshot_interval_s:
                    self.snapshot()
                if time.monotonic() - self._lag_at >= 5.0:
                    self._update_lag()
        except Exception as exc:  # kept for start()/health; the replica stops following
            log.exception("replica follower stopped")
            self.error = exc
        finally:
            if self._consumer is not None:
                self._consumer.close()

    def _assign(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
            client_id=f"replica-{self.replica_id}", request_timeout_ms=self.settings.kafka_request_timeout_ms,
            fetch_max_wait_ms=max(1, int(self.settings.replica_poll_timeout_s * 1000)),
        )
        topic = self.settings.kafka_vectors_topic
        deadline = time.monotonic() + 30
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RuntimeError(f"topic {topic!r} has no partitions (run ensure_topics or the indexer first)")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        for tp in tps:
            if tp.partition in self.state.offsets:
                consumer.seek(tp, self.state.offsets[tp.partition])
            else:
                consumer.seek_to_beginning(tp)
        return consumer

    def _reached(self, targets: dict[TopicPartition, int]) -> bool:
        return all(self._consumer.position(tp) >= end for tp, end in targets.items())

    def _update_lag(self) -> None:
        self._lag_at = time.monotonic()
        assigned = list(self._consumer.assignment())
        ends = self._consumer.end_offsets(assigned)
        LAG.set(sum(max(0, ends[tp] - self._consumer.position(tp)) for tp in assigned))

    @property
    def replica_id(self) -> str:
        return self.snapshot_dir.name

    # --- applying records
    def apply(self, raw_records) -> list[VectorRecord]:
        """Apply polled Kafka records in order (newest version per item wins); returns what changed."""
        latest: dict[str, tuple[VectorRecord, str]] = {}
        base: dict[str, tuple[VectorRecord, str]] = {}  # per item, its newest vector or delete in this poll
        for raw in raw_records:
            self.state.offsets[raw.partition] = max(self.state.offsets.get(raw.partition, 0), raw.offset + 1)
            try:
                record = decode_record(raw.key, raw.value)
            except (ValueError, UnicodeDecodeError) as exc:
                log.warning("unreadable vector record %s@%d: %s", raw.partition, raw.offset, exc)
                SKIPPED.labels("unreadable").inc()
                continue
            encoder = dict(raw.headers or []).get("encoder", b"").decode("utf-8")
            held = latest.get(record.item_id)
            if held is None or record.version >= held[0].version:
                latest[record.item_id] = (record, encoder)
            if not record.advance and (record.item_id not in base or record.version >= base[record.item_id][0].version):
                base[record.item_id] = (record, encoder)
        for item, (rec, _) in list(latest.items()):
            # an advance on top of a vector of the same text in this same poll: that vector, at the advance's
            # version (else the advance would be checked against the older text the index still holds)
            under = base.get(item)
            if (rec.advance and under is not None and under[0].vector is not None and under[0].doc is not None
                    and under[0].version < rec.version and under[0].doc.text == rec.doc.text):
                latest[item] = (VectorRecord(rec.item_id, rec.version, rec.event_ms, under[0].vector, rec.doc),
                                under[1])
        held = self.state.versions
        fresh = [(rec, enc) for rec, enc in latest.values() if rec.version > held.version(stable_id(rec.item_id))]
        SKIPPED.labels("stale").inc(len(latest) - len(fresh))
        deletes = [rec for rec, _ in fresh if rec.deleted]
        advances = [rec for rec, _ in fresh if rec.advance]
        kept = [rec for rec in advances if held.holds_text(stable_id(rec.item_id), rec.doc.text)]
        # an advance whose text this index does not hold is re-embedded (enc None: never "ours")
        upserts = [(rec, enc) for rec, enc in fresh if not rec.deleted and not rec.advance]
        upserts += [(rec, None) for rec in advances if not held.holds_text(stable_id(rec.item_id), rec.doc.text)]
        if upserts:
            self.index.upsert(np.array([stable_id(rec.item_id) for rec, _ in upserts], dtype=np.int64),
                              self._vectors(upserts))
        if deletes:
            self.index.delete(np.array([stable_id(rec.item_id) for rec in deletes], dtype=np.int64))
        if self.local_store:
            self.store.put_items([rec.doc for rec, _ in upserts if rec.doc is not None] + [rec.doc for rec in kept])
            self.store.delete_items([rec.item_id for rec in deletes], [rec.version for rec in deletes])
        # the versions move after the index, so GET /v1/items never reports a version the index lacks
        for rec, _ in upserts:
            held.upserted(stable_id(rec.item_id), rec.version, None if rec.doc is None else rec.doc.text)
        for rec in kept:
            held.advanced(stable_id(rec.item_id), rec.version)
        for rec in deletes:
            held.deleted(stable_id(rec.item_id), rec.version)
        if self.lexical is not None:  # titles of records without their document stay as they were
            self.lexical.upsert([(rec.doc.item_id, rec.doc.title) for rec, _ in upserts if rec.doc is not None])
            self.lexical.delete([rec.item_id for rec in deletes])
        now = time.time()
        applied = [rec for rec, _ in fresh]
        for rec in applied:
            if self.local_store:
                self.state.docs[rec.item_id] = (rec.version, rec.doc)
            EVENT_AGE.observe(max(0.0, now - rec.event_ms / 1000))
        APPLIED.labels("upsert").inc(len(upserts) - (len(advances) - len(kept)))
        APPLIED.labels("advance").inc(len(advances))
        APPLIED.labels("delete").inc(len(deletes))
        EMBEDDINGS.labels("reused").inc(len(kept))
        self._changed_since_snapshot = self._changed_since_snapshot or bool(raw_records)
        if self.on_applied is not None and applied:
            self.on_applied(applied, now)
        return applied

    def _vectors(self, upserts: list[tuple[VectorRecord, str | None]]) -> np.ndarray:
        """The logged vectors; re-embedded here when they came from another encoder than ours (or none came)."""
        vectors = np.zeros((len(upserts), self.index.dim), np.float32)
        ours = self.encoder.model_version
        other = []
        for i, (rec, enc) in enumerate(upserts):
            if enc == ours and rec.vector is not None and rec.vector.shape[0] >= self.index.dim:
                vectors[i] = rec.vector[: self.index.dim]
            else:
                other.append(i)
        if other:
            vectors[other] = self.encoder.encode([upserts[i][0].doc.text for i in other], kind="item")
        EMBEDDINGS.labels("logged").inc(len(upserts) - len(other))
        EMBEDDINGS.labels("embedded").inc(len(other))
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    # --- snapshots
    def snapshot(self) -> Path:
        """Write index + versions + offsets (+ local docs) into a new directory, then point CURRENT at it."""
        self._snapshot_at = time.monotonic()
        name = f"snap-{time.time_ns()}"
        target = self.snapshot_dir / name
        target.mkdir(parents=True, exist_ok=True)
        meta = {"offsets": {str(p): o for p, o in self.state.offsets.items()},
                "topic": self.settings.kafka_vectors_topic, "encoder": self.encoder.model_version,
                "layout": index_layout(self.settings)}
        self.index.snapshot(target / "items.faiss", meta=meta)
        self.state.versions.save(target / "versions.npz")
        docs = [{"item_id": item, "version": v, "doc": None if d is None else d.model_dump()}
                for item, (v, d) in self.state.docs.items()]
        write_atomic(target / "docs.json", json.dumps(docs).encode("utf-8"))
        write_atomic(target / "meta.json", json.dumps(meta).encode("utf-8"))
        write_atomic(self.snapshot_dir / "CURRENT", name.encode("utf-8"))
        for old in self.snapshot_dir.glob("snap-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
        self._changed_since_snapshot = False
        log.info("replica snapshot %s: %d vectors, offsets %s", target, len(self.index), meta["offsets"])
        return target

    def restore(self, *, settings: Settings) -> VectorIndex | None:
        """Load the last snapshot if it was made for this topic and encoder; returns its index."""
        pointer = self.snapshot_dir / "CURRENT"
        if not pointer.exists():
            return None
        target = self.snapshot_dir / pointer.read_text().strip()
        try:
            meta = json.loads((target / "meta.json").read_text())
            if (meta.get("topic"), meta.get("encoder"), meta.get("layout")) != (
                    settings.kafka_vectors_topic, self.encoder.model_version, index_layout(settings)):
                log.info("replica snapshot %s is for another topic, encoder or index layout; replaying the log",
                         target)
                return None
            index = restore_index(settings, target / "items.faiss")
            versions = SearchableVersions.load(target / "versions.npz")  # KeyError: written before text hashes
            docs = json.loads((target / "docs.json").read_text())
        except (OSError, ValueError, KeyError, RuntimeError) as exc:  # RuntimeError: FAISS could not read it
            log.warning("replica snapshot %s unusable (%s); replaying the log", target, exc)
            return None
        self.state.versions.replace_with(versions)  # in place: the runtime reads the same object
        self.state = FollowerState(versions=self.state.versions,
                                   offsets={int(p): o for p, o in meta["offsets"].items()})
        if self.local_store:
            live = [ItemDocument(**row["doc"]) for row in docs if row["doc"] is not None]
            gone = [row for row in docs if row["doc"] is None]
            self.store.put_items(live)
            self.store.delete_items([row["item_id"] for row in gone], [row["version"] for row in gone])
            self.state.docs = {row["item_id"]: (row["version"], None if row["doc"] is None else
                                                ItemDocument(**row["doc"])) for row in docs}
        self.index = index
        log.info("replica restored %s: %d vectors, offsets %s", target, len(index), self.state.offsets)
        return index
