"""Outages under a write stream, with real servers and no process restarted (issue 20).

A replica app (Kafka + Redis configured) takes a steady stream of ``PUT /v1/items`` while an indexer
worker runs beside it. Meanwhile:

- **Redis restarts** from its append-only file (a clean shutdown, then the same port and data);
- **the broker is cut off**: a TCP proxy in front of Tansu (which also advertises the proxy) drops every
  connection and refuses new ones for a few seconds, then accepts again. Tansu keeps its data in memory,
  so a real broker restart would lose its topics; the cut is what the clients see of one;
- **the broker hangs**: SIGSTOP, then SIGCONT;
- **Triton stops and starts** (its own test) under an API and an indexer that both infer through it;
- **dead letters meet a broker cut** (their own test): the flush fails, the letter stays pending, and
  flushing again once the broker is back delivers it.

Every write must be answered 202 (acknowledged: the event is in the broker) or 503 (refused with a reason);
never a 5xx of another kind, and never a 202 whose item does not become searchable after recovery. Nothing
is restarted: the same app, indexer thread and servers serve before, during and after.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Self

import pytest
from kafka.errors import KafkaError

from indexer.consumer import make_producer
from indexer.dead_letter import DeadLetters
from service.api.app import create_app
from service.settings import Settings
from service.stream.topics import ensure_topics
from tests.conftest import serving
from tests.integration.nrt_helpers import nrt_settings, read_topic, running_indexer
from tests.integration.servers import DurableRedis, free_port, tansu_broker
from tests.integration.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

WORDS = ["Copper", "Walnut", "Titanium", "Velvet", "Glazed", "Brass", "Cedar", "Slate", "Bamboo", "Chrome"]


class WriteStream:
    """PUTs new items one after another on a thread; remembers every answer."""

    def __init__(self, client, *, every_s: float = 0.05) -> None:
        self.client, self.every_s = client, every_s
        self.answers: list[tuple[str, int, float, str]] = []  # item, status, time, phase
        self.phase = "before"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="write-stream", daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            item = f"outage-{n}"
            title = f"{WORDS[n % len(WORDS)]} Outage Drill Item Number {n}"
            phase = self.phase  # the phase the request started in
            response = self.client.put(f"/v1/items/{item}", json={"version": 1, "title": title})
            self.answers.append((item, response.status_code, time.monotonic(), phase))
            n += 1
            time.sleep(self.every_s)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)

    def acknowledged(self) -> list[str]:
        return [item for item, status, _, _ in self.answers if status == 202]

    def by_phase(self, phase: str) -> list[int]:
        return [status for _, status, _, p in self.answers if p == phase]


def searchable(client, item: str) -> bool:
    response = client.get(f"/v1/items/{item}")
    return response.status_code == 200 and response.json()["searchable_version"] == 1


def test_acknowledged_writes_survive_redis_restart_broker_cut_and_hang(model_repo, tmp_path) -> None:
    proxy_port, broker_port = free_port(), free_port()
    proxy = TcpProxy(proxy_port, ("127.0.0.1", broker_port)).start()
    redis = DurableRedis().start()
    try:
        with tansu_broker(port=broker_port, advertised_port=proxy_port) as broker:
            settings = nrt_settings(kafka_bootstrap=broker, redis_url=redis.url, model_repo=model_repo,
                                    state_dir=tmp_path, replica_id=f"outage-{time.time_ns()}",
                                    kafka_request_timeout_ms=3000, redis_timeout_s=1.0, readiness_cache_s=0)
            with serving(create_app(settings)) as client, running_indexer(settings):
                with WriteStream(client) as stream:
                    time.sleep(3)
                    stream.phase = "redis down"
                    redis.stop()
                    time.sleep(3)
                    redis.start()
                    stream.phase = "after redis"
                    time.sleep(3)
                    stream.phase = "broker cut"
                    proxy.cut()
                    time.sleep(7)
                    proxy.restore()
                    stream.phase = "after cut"
                    time.sleep(4)
                    stream.phase = "broker hung"
                    broker.process.send_signal(signal.SIGSTOP)
                    time.sleep(3)
                    broker.process.send_signal(signal.SIGCONT)
                    stream.phase = "after hang"
                    time.sleep(4)

                statuses = {status for _, status, _, _ in stream.answers}
                assert statuses <= {202, 503}, f"answers other than 202 / 503: {statuses}"
                assert 503 in stream.by_phase("redis down"), "writes while Redis was down must be refused"
                assert 503 in stream.by_phase("broker cut"), "writes while the broker was cut off must be refused"
                for phase in ("before", "after redis", "after cut", "after hang"):
                    assert 202 in stream.by_phase(phase), f"no write acknowledged {phase}: recovery without restart"
                acknowledged = stream.acknowledged()
                print(f"{len(stream.answers)} writes, {len(acknowledged)} acknowledged, "
                      f"{len(stream.answers) - len(acknowledged)} refused with 503; by phase: "
                      f"{ {p: (s.count(202), s.count(503)) for p in dict.fromkeys(x[3] for x in stream.answers) for s in [stream.by_phase(p)]} }")
                with serving(create_app(settings)) as fresh_replica:  # and a replica started after it all
                    for name, replica in (("the replica", client), ("a new replica", fresh_replica)):
                        deadline = time.monotonic() + 120
                        while (missing := [i for i in acknowledged if not searchable(replica, i)]) and \
                                time.monotonic() < deadline:
                            time.sleep(0.5)
                        answers = {item: replica.get(f"/v1/items/{item}").text[:200] for item in missing[:5]}
                        assert not missing, f"{name}: {len(missing)} acknowledged writes not searchable, e.g. {answers}"
                    assert client.get("/readyz").status_code == 200
    finally:
        proxy.close()
        redis.close()


def test_dead_letters_taken_while_the_broker_is_cut_off_reach_their_topic_once_it_is_back() -> None:
    """The indexer's dead-letter flush fails while the broker is away; flushing again after it is back (what
    the worker's in-place retry does) delivers the letter the broker did not take, once, and the one it had
    taken before the cut is still there. (A send that fails outright is sent again by the next flush:
    ``tests/unit/test_dead_letters.py``.)"""
    proxy_port, broker_port = free_port(), free_port()
    proxy = TcpProxy(proxy_port, ("127.0.0.1", broker_port)).start()
    try:
        with tansu_broker(port=broker_port, advertised_port=proxy_port) as broker:
            settings = Settings(_env_file=None, kafka_bootstrap=broker, kafka_request_timeout_ms=1000,
                                kafka_dlq_topic=f"dlq-{time.time_ns()}")
            ensure_topics(settings)
            producer = make_producer(settings, client_id="dead-letters-outage")  # the indexer's producer
            sent: list[bytes] = []
            send = producer.send
            producer.send = lambda topic, **letter: sent.append(letter["key"]) or send(topic, **letter)
            letters = DeadLetters(producer, topic=settings.kafka_dlq_topic)

            def letter(n: int) -> dict:
                return {"key": f"bad-{n}".encode(), "value": b"\xff not json", "reason": "undecodable",
                        "detail": "test", "source_topic": settings.kafka_topic, "source_partition": 0,
                        "source_offset": n}

            letters.send(**letter(0))
            letters.flush(timeout_s=10)  # before the cut: connected, metadata known
            proxy.cut()
            letters.send(**letter(1))
            with pytest.raises(KafkaError):
                letters.flush(timeout_s=1)
            assert letters.pending == 1
            proxy.restore()
            restored, flushes = time.monotonic(), 1
            while True:
                try:
                    letters.flush(timeout_s=2)
                    break
                except KafkaError:
                    assert time.monotonic() < restored + 60, "the dead letter never reached the broker after the cut"
                    flushes += 1
                    time.sleep(0.5)
            assert letters.pending == 0
            print(f"dead letter delivered {time.monotonic() - restored:.2f} s after the broker was back, "
                  f"flush {flushes} after the restore, sends {sent}")
            producer.close()
            dead = read_topic(settings, settings.kafka_dlq_topic)
            assert sorted(rec.key for rec in dead) == sorted(sent) == [b"bad-0", b"bad-1"]
            assert all(dict(rec.headers)["reason"] == b"undecodable" for rec in dead)
    finally:
        proxy.close()


def test_acknowledged_writes_survive_triton_stop_and_start(kafka_bootstrap, redis_url, triton, triton_repo,
                                                           tmp_path) -> None:
    """Triton stops under a write stream where the API and the indexer both infer through it: writes are
    still acknowledged (they only need the broker), the indexer retries the same batch until Triton is back
    (nothing dead-lettered, nothing committed unapplied), and every acknowledged write becomes searchable."""
    settings = nrt_settings(kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, model_repo=triton_repo,
                            state_dir=tmp_path, replica_id=f"triton-outage-{time.time_ns()}", inference="triton",
                            triton_url=triton.grpc_url, triton_retries=1, triton_timeout_s=30.0,
                            readiness_cache_s=0, model_swap_poll_s=0)
    with serving(create_app(settings)) as client, running_indexer(settings):
        try:
            with WriteStream(client) as stream:
                time.sleep(3)
                stream.phase = "triton down"
                triton.stop()
                time.sleep(2)
                down_ready = client.get("/readyz")
                time.sleep(2)
                triton.start()  # same ports; nothing else restarts
                stream.phase = "after triton"
                time.sleep(3)
        finally:
            if not triton.running:
                triton.start()
        statuses = {status for _, status, _, _ in stream.answers}
        assert statuses <= {202, 503}, f"answers other than 202 / 503: {statuses}"
        assert down_ready.status_code == 503 and "Triton" in down_ready.text, down_ready.text
        assert 202 in stream.by_phase("triton down"), "writes need only the broker: acknowledged while Triton is down"
        assert 202 in stream.by_phase("after triton")
        acknowledged = stream.acknowledged()
        deadline = time.monotonic() + 120
        while (missing := [i for i in acknowledged if not searchable(client, i)]) and time.monotonic() < deadline:
            time.sleep(0.5)
        answers = {item: client.get(f"/v1/items/{item}").text[:200] for item in missing[:3]}
        assert not missing, f"{len(missing)} acknowledged writes not searchable after Triton came back, e.g. {answers}"
        assert read_topic(settings, settings.kafka_dlq_topic, idle_s=1.0) == [], "an outage is not a bad event"
        assert client.get("/readyz").status_code == 200
        print(f"Triton outage: {len(stream.answers)} writes, {len(acknowledged)} acknowledged "
              f"({stream.by_phase('triton down').count(202)} while Triton was down), all searchable after it returned")
