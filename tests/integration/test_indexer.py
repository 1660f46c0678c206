"""The indexer worker against a real Tansu broker and a real redis-server, with the real ONNX encoder.

Checks the store (versions, documents), the vector log replicas follow, the dead-letter topic
and the committed offsets; the HTTP path is in ``test_replicas.py``.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from service.store.redis_store import RedisStore
from tests.integration.nrt_helpers import (
    committed,
    delete,
    expected_final,
    nrt_settings,
    produce,
    read_topic,
    running_indexer,
    upsert,
    vector_log,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture()
def settings(kafka_bootstrap, redis_url, model_repo, tmp_path):
    return nrt_settings(kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, model_repo=model_repo,
                        state_dir=tmp_path)


@pytest.fixture()
def store(settings):
    store = RedisStore(settings)
    yield store
    store.close()


def fully_committed(settings, n_events_by_partition: dict[int, int] | None = None):
    offsets = committed(settings)
    return offsets if n_events_by_partition is None or offsets == n_events_by_partition else None


def test_events_become_documents_and_vector_records(settings, store) -> None:
    events = [upsert(f"it-{i}", 1, f"cordless drill model {i}", category="tools") for i in range(20)]
    events += [upsert("it-3", 2, "cordless drill model 3 with case"), delete("it-7", 2)]
    produce(settings, events)
    with running_indexer(settings):
        wait_until(lambda: store.item_versions(["it-3", "it-7"]) == [2, 2], what="updates applied")
    assert store.count() == 19
    assert store.get_items(["it-3"])[0].title == "cordless drill model 3 with case"
    assert store.get_items(["it-7"]) == [None]
    latest = {rec.item_id: rec for rec in vector_log(settings)}
    assert set(latest) == {f"it-{i}" for i in range(20)}
    assert latest["it-7"].deleted and latest["it-7"].version == 2
    assert latest["it-3"].version == 2 and latest["it-3"].doc.title.endswith("with case")
    assert latest["it-0"].vector.shape == (settings.embedding_dim,)
    assert abs(float((latest["it-0"].vector ** 2).sum()) - 1.0) < 1e-4
    assert sum(committed(settings).values()) == len(events)


def test_out_of_order_and_duplicate_events_are_dropped(settings, store) -> None:
    produce(settings, [upsert("ooo", 5, "version five")])
    with running_indexer(settings):
        wait_until(lambda: store.item_version("ooo") == 5, what="v5 applied")
        # Older versions and an exact duplicate arrive later, in separate batches.
        produce(settings, [upsert("ooo", 3, "version three"), delete("ooo", 4)])
        produce(settings, [upsert("ooo", 5, "version five duplicate"), upsert("ooo", 1, "version one")])
        wait_until(lambda: sum(committed(settings).values()) == 5, what="all five consumed and committed")
    assert store.get_items(["ooo"])[0].title == "version five"
    assert store.item_version("ooo") == 5
    published = [rec for rec in vector_log(settings) if rec.item_id == "ooo"]
    assert [(rec.version, rec.deleted) for rec in published] == [(5, False)]


def test_dead_letters_carry_the_reason_and_valid_neighbours_apply(settings, store) -> None:
    bad = [
        (b"x1", b"\xff\xfenot json"),
        (b"x2", json.dumps({"type": "upsert", "item_id": "x2", "version": 1}).encode()),  # no title
        (b"x3", json.dumps({"type": "upsert", "item_id": "x3", "version": 1,
                            "title": "t" * (settings.max_event_bytes + 1)}).encode()),
        (b"other", json.dumps({"type": "delete", "item_id": "x4", "version": 1}).encode()),
        (b"x5", b""),
    ]
    produce(settings, [upsert("good-1", 1, "garden hose")])
    produce(settings, bad)
    produce(settings, [upsert("good-2", 1, "leaf blower")])
    with running_indexer(settings):
        wait_until(lambda: sum(committed(settings).values()) == 7, what="all records committed")
    assert [doc.title for doc in store.get_items(["good-1", "good-2"])] == ["garden hose", "leaf blower"]
    dead = read_topic(settings, settings.kafka_dlq_topic)
    reasons = {rec.key: dict(rec.headers)["reason"].decode() for rec in dead}
    assert reasons == {b"x1": "undecodable", b"x2": "invalid", b"x3": "oversized", b"other": "key_mismatch",
                       b"x5": "empty"}
    originals = dict(bad)
    for rec in dead:
        assert rec.value == originals[rec.key]  # the original bytes, untouched
        headers = dict(rec.headers)
        assert headers["source_topic"].decode() == settings.kafka_topic and headers["detail"]
    assert store.item_versions(["x2", "x3", "x4"]) == [None, None, None]


def test_two_workers_in_one_group_share_the_partitions(kafka_bootstrap, redis_url, model_repo, tmp_path) -> None:
    settings = nrt_settings(kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, model_repo=model_repo,
                            state_dir=tmp_path, kafka_partitions=4)
    store = RedisStore(settings)
    with running_indexer(settings, client_id="worker-a") as a, running_indexer(settings, client_id="worker-b") as b:
        wait_until(lambda: a.listener.assignments and b.listener.assignments
                   and len(a.listener.assignments[-1] | b.listener.assignments[-1]) == 4
                   and not (a.listener.assignments[-1] & b.listener.assignments[-1]), timeout_s=60,
                   what="both workers own disjoint partitions covering the topic")
        events = [upsert(f"shared-{i}", 1, f"patio chair {i}") for i in range(60)]
        produce(settings, events)
        wait_until(lambda: store.count() == 60, timeout_s=60, what="60 items applied")
        owned_a = {tp.partition for tp in a.listener.assignments[-1]}
    assert 0 < len(owned_a) < 4
    assert a.applied_batches > 0 and b.applied_batches > 0
    published = Counter(rec.item_id for rec in vector_log(settings))
    assert set(published) == {e.item_id for e in events} and set(published.values()) == {1}
    store.close()


def test_restarted_worker_resumes_after_its_last_commit(settings, store) -> None:
    first = [upsert(f"r-{i}", 1, f"ceiling fan {i}") for i in range(30)]
    second = [upsert(f"r-{i}", 2, f"ceiling fan {i} bronze") for i in range(0, 30, 2)] + [delete("r-1", 2)]
    produce(settings, first)
    with running_indexer(settings, client_id="before-restart"):
        wait_until(lambda: sum(committed(settings).values()) == 30, what="first half committed")
    produce(settings, second)  # arrives while no worker runs
    with running_indexer(settings, client_id="after-restart"):
        wait_until(lambda: sum(committed(settings).values()) == 46, what="second half committed")
    final = expected_final(first + second)
    docs = dict(zip(final, store.get_items(list(final))))
    for item_id, (version, title) in final.items():
        assert store.item_version(item_id) == version
        assert (docs[item_id].title if docs[item_id] else None) == title
    versions = Counter((rec.item_id, rec.version) for rec in vector_log(settings))
    assert set(versions.values()) == {1}, "a committed event was re-published after the restart"


def test_rebalance_flushes_and_commits_the_open_batch_before_partitions_move(kafka_bootstrap, redis_url, model_repo,
                                                                             tmp_path) -> None:
    # Batches that would stay open for a minute: only the revoke callback can make them durable early.
    settings = nrt_settings(kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, model_repo=model_repo,
                            state_dir=tmp_path, indexer_batch_max_wait_s=60.0, indexer_batch_max_events=10_000)
    store = RedisStore(settings)
    events = [upsert(f"rb-{i}", 1, f"outdoor string lights {i}") for i in range(20)]
    with running_indexer(settings, client_id="holder") as holder:
        wait_until(lambda: holder.listener.assignments, timeout_s=30, what="first member assigned")
        produce(settings, events)
        wait_until(lambda: holder.batcher.pending == 20, what="records waiting in the open batch")
        assert store.count() == 0 and sum(committed(settings).values()) == 0
        started = time.monotonic()
        with running_indexer(settings, client_id="joiner"):
            wait_until(lambda: sum(committed(settings).values()) == 20, timeout_s=30,
                       what="open batch committed by the revoke callback")
            assert store.count() == 20 and time.monotonic() - started < 30
        assert holder.listener.revoke_commits >= 1
    published = Counter((rec.item_id, rec.version) for rec in vector_log(settings))
    assert len(published) == 20 and set(published.values()) == {1}
    store.close()
