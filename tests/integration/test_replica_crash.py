"""kill -9 of a serving replica while it follows the vector log, then a restart: the replica ends holding
exactly the newest version of every item — nothing lost, nothing stale — checked over HTTP and on its
final snapshot.

Each trial produces ``SHOPRANK_REPLICA_CRASH_EVENTS`` events (2,000 by default, what CI runs;
``make crash-suite`` runs 10,000 per trial: 40 % creates, 50 % title changes, 10 % deletes), starts
``shoprank serve`` as a replica of a Kafka + Redis deployment with a snapshot every second, runs the
indexer, and SIGKILLs the replica a random 0–1.5 s after a random share (10–80 %) of the created items is
stored: the kill lands while it applies records or while it writes a snapshot. The same replica (same
id, same state dir) is started again; it restores its last complete snapshot and replays the log after
it. ``SHOPRANK_REPLICA_CRASH_TRIALS`` trials run (1 by default; 5 in ``make crash-suite``).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from bench.endpoints import start_server
from service.catalogue import stable_id
from service.index.factory import restore_index
from service.searchable import SearchableVersions
from service.settings import Settings
from service.store.redis_store import RedisStore
from tests.integration.nrt_helpers import committed, expected_final, nrt_settings, produce, wait_until
from tests.integration.servers import free_port
from tests.integration.test_indexer_crash import settings_env, start_indexer, trial_events

pytestmark = pytest.mark.integration

REPLICA_CRASH_TRIALS = int(os.environ.get("SHOPRANK_REPLICA_CRASH_TRIALS", "1"))
REPLICA_CRASH_EVENTS = int(os.environ.get("SHOPRANK_REPLICA_CRASH_EVENTS", "2000"))


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    """Shared by the module's replicas so the seed indexes are built once; snapshots are per replica id."""
    return tmp_path_factory.mktemp("replica-crash-state")


def start_replica(settings: Settings, port: int, log_path: Path) -> subprocess.Popen:
    """``shoprank serve`` following the vector log; returns once /readyz says 200 (caught up)."""
    env = settings_env(settings) | {
        "SHOPRANK_REPLICA_ID": settings.replica_id,
        "SHOPRANK_REPLICA_SNAPSHOT_INTERVAL_S": str(settings.replica_snapshot_interval_s),
        "SHOPRANK_CATALOGUE_LIMIT": str(settings.catalogue_limit), "SHOPRANK_API_KEY": "crash-test-key",
        "SHOPRANK_LOG_LEVEL": "INFO",
    }
    return start_server(f"replica {settings.replica_id}", env, port, timeout_s=600, state=settings.state_dir,
                        log=log_path)


def mismatched(port: int, final: dict[str, tuple[int, str | None]], item_ids: list[str]) -> list[str]:
    """Items whose replica answer differs from their newest event: live ones must be searchable at
    exactly that version, deleted ones must answer 404."""
    wrong = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for item_id in item_ids:
            conn.request("GET", f"/v1/items/{item_id}")
            response = conn.getresponse()
            body = response.read()
            version, title = final[item_id]
            if title is None:
                ok = response.status == 404
            else:
                ok = response.status == 200 and json.loads(body)["searchable_version"] == version
            if not ok:
                wrong.append(item_id)
    finally:
        conn.close()
    return wrong


@pytest.mark.parametrize("seed", range(1, REPLICA_CRASH_TRIALS + 1))
def test_kill_9_replica_mid_stream_then_restart_holds_every_newest_version(seed, kafka_bootstrap, redis_url,
                                                                           model_repo, state_dir,
                                                                           tmp_path) -> None:
    settings = nrt_settings(kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, model_repo=model_repo,
                            state_dir=state_dir, indexer_batch_max_events=64, intra_op_threads=1,
                            replica_id=f"crash-{seed}-{time.time_ns()}", replica_snapshot_interval_s=1.0)
    store = RedisStore(settings)
    rng = random.Random(seed)
    events = trial_events(seed, REPLICA_CRASH_EVENTS)
    creates = sum(1 for e in events if e.type == "upsert" and e.version == 1)
    kill_at_stored = int(creates * rng.uniform(0.1, 0.8))
    port = free_port()
    snapshot_dir = state_dir / "replicas" / settings.replica_id

    replica = start_replica(settings, port, tmp_path / "replica-1.log")
    indexer = None
    try:
        seeded = store.count()  # the catalogue the first replica stored at start-up
        produce(settings, events)
        indexer = start_indexer(settings, tmp_path / "indexer.log")
        wait_until(lambda: store.count() - seeded >= kill_at_stored or indexer.poll() is not None, timeout_s=900,
                   every_s=0.02, what=f"{kill_at_stored} items stored")
        assert indexer.poll() is None, (tmp_path / "indexer.log").read_text()[-3000:]
        time.sleep(rng.uniform(0.0, 1.5))
        replica.send_signal(signal.SIGKILL)
        replica.wait(10)
        stored_at_kill = store.count() - seeded
        snapshots_at_kill = sorted(p.name for p in snapshot_dir.glob("snap-*"))
        assert snapshot_dir.joinpath("CURRENT").exists(), "no snapshot before the kill: nothing to restore"
        assert stored_at_kill < creates, "the kill came after the stream was indexed: not a mid-stream crash"

        replica = start_replica(settings, port, tmp_path / "replica-2.log")
        restored = "replica restored" in (tmp_path / "replica-2.log").read_text()
        wait_until(lambda: sum(committed(settings).values()) == len(events), timeout_s=900, every_s=0.5,
                   what="every offset committed by the indexer")

        final = expected_final(events)
        pending = list(final)
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            pending = mismatched(port, final, pending)
            if pending:
                time.sleep(0.5)
        assert not pending, f"{len(pending)} items not at their newest version on the replica, e.g. {pending[:5]}"
        replica.send_signal(signal.SIGTERM)  # a clean stop writes a final snapshot
        replica.wait(60)
    finally:
        for proc in (replica, indexer):
            if proc is not None and proc.poll() is None:
                proc.kill()
        store.close()

    # The final snapshot, read back exactly as a restart would: every item at its newest version,
    # a vector for each live item, none for a deleted one.
    snapshot = snapshot_dir / (snapshot_dir / "CURRENT").read_text().strip()
    versions = SearchableVersions.load(snapshot / "versions.npz")
    index = restore_index(settings, snapshot / "items.faiss")
    ids = np.array([stable_id(i) for i in final], dtype=np.int64)
    found, _ = index.vectors(ids)
    lost = stale = 0
    for (version, title), vid, has_vector in zip(final.values(), ids.tolist(), found.tolist()):
        held = versions.held(int(vid))
        if held is None or held[0] < version or (title is not None and (held[1] is None or not has_vector)):
            lost += 1
        elif held[0] > version or (title is None and (held[1] is not None or has_vector)):
            stale += 1
    assert (lost, stale) == (0, 0), f"{lost} lost, {stale} stale on the final snapshot"
    print(f"replica trial seed={seed}: {len(events)} events, {len(final)} items, 0 lost, 0 stale; killed with "
          f"{stored_at_kill}/{creates} created items stored, snapshots on disk {snapshots_at_kill}, "
          f"restart {'restored a snapshot' if restored else 'replayed the whole log'}")
