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

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from prometheus_client import Counter, Gauge, Histogram

from service.errors import DependencyUnavailable
from service.index.base import VectorIndex
from service.index.factory import index_layout, restore_index
from service.index.snapshots import write_atomic
from service.searchable import REGISTRY, SearchableVersions
from service.settings import Settings
from service.store.base import ItemDocument, ItemStore
from service.stream.vector_log import decode_record
from service.versioned_apply import ApplyResult, ItemChange, apply_changes

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
                 on_applied: Callable[[list[ItemChange], float], None] | None = None,
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
        """Follow until closed. A broker, Redis or Triton outage is waited out with back-off, never fatal:
        a batch that fails to apply is read again from its first offset (the apply is idempotent)."""
        backoff_s = 0.0
        try:
            self._consumer = self._assign()
            targets = self._consumer.end_offsets(list(self._consumer.assignment()))
        except Exception as exc:  # kept for start()/health: this replica cannot start following
            log.exception("replica follower could not start")
            self.error = exc
            return
        try:
            while not self._stop.is_set():
                try:
                    self._step(targets)
                    backoff_s, self.error = 0.0, None
                except (KafkaError, DependencyUnavailable) as exc:
                    backoff_s = min(5.0, max(0.2, backoff_s * 2))
                    log.warning("replica follower: %s; retrying in %.1fs", exc, backoff_s)
                    self.error = exc
                    self._stop.wait(backoff_s)
        finally:
            self._consumer.close()

    def _step(self, targets: dict[TopicPartition, int]) -> None:
        polled = self._consumer.poll(timeout_ms=int(self.settings.replica_poll_timeout_s * 1000), max_records=2000)
        records = [rec for batch in polled.values() for rec in batch]
        if records:
            try:
                self.apply(records)
            except BaseException:
                for tp, batch in polled.items():  # read the batch again after the outage
                    self._consumer.seek(tp, min(rec.offset for rec in batch))
                raise
        elif not self.caught_up.is_set() and self._reached(targets):
            log.info("replica caught up: %d vectors, offsets %s", len(self.index), self.state.offsets)
            self.caught_up.set()
        if time.monotonic() - self._snapshot_at >= self.settings.replica_snapshot_interval_s:
            self.snapshot()
        if time.monotonic() - self._lag_at >= 5.0:
            self._update_lag()

    def _assign(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
            client_id=f"replica-{self.replica_id}", request_timeout_ms=self.settings.kafka_request_timeout_ms,
            fetch_max_wait_ms=max(1, int(self.settings.replica_poll_timeout_s * 1000)),
            reconnect_backoff_max_ms=self.settings.kafka_reconnect_backoff_max_ms,
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
    def apply(self, raw_records) -> ApplyResult:
        """Apply polled Kafka records through the versioned apply (newest version per item wins)."""
        changes, offsets = [], dict(self.state.offsets)
        for raw in raw_records:
            offsets[raw.partition] = max(offsets.get(raw.partition, 0), raw.offset + 1)
            try:
                record = decode_record(raw.key, raw.value)
            except (ValueError, UnicodeDecodeError) as exc:
                log.warning("unreadable vector record %s@%d: %s", raw.partition, raw.offset, exc)
                SKIPPED.labels("unreadable").inc()
                continue
            encoder = dict(raw.headers or []).get("encoder", b"").decode("utf-8")
            changes.append(ItemChange(record.item_id, record.version, record.doc, deleted=record.deleted,
                                      vector=record.vector, encoder=encoder or None, event_ms=record.event_ms))
        result = apply_changes(changes, index=self.index, versions=self.state.versions, encoder=self.encoder,
                               lexical=self.lexical)
        self.state.offsets = offsets  # what a snapshot covers: only records applied
        if self.local_store:
            self.store.put_items([c.doc for c in result.applied if not c.deleted and c.doc is not None])
            deletes = [c for c in result.applied if c.deleted]
            self.store.delete_items([c.item_id for c in deletes], [c.version for c in deletes])
        now = time.time()
        for change in result.applied:
            if self.local_store:
                self.state.docs[change.item_id] = (change.version, change.doc)
            if change.event_ms is not None:
                EVENT_AGE.observe(max(0.0, now - change.event_ms / 1000))
        SKIPPED.labels("stale").inc(result.stale)
        SKIPPED.labels("no_document").inc(result.skipped)
        APPLIED.labels("upsert").inc(len(result.upserted) - result.reused)
        APPLIED.labels("advance").inc(result.reused)
        APPLIED.labels("delete").inc(len(result.deleted))
        self._changed_since_snapshot = self._changed_since_snapshot or bool(raw_records)
        if self.on_applied is not None and result.applied:
            self.on_applied(result.applied, now)
        return result

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
