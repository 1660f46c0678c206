"""``/readyz`` tells the truth about the dependencies a replica is configured with (issue 20): with Redis or the
broker frozen (SIGSTOP: the port still accepts connections, nothing answers — what a hung server looks like) it
answers 503 naming that dependency, ``/healthz`` stays 200, and it is ready again when they resume, with no
restart. Real redis-server and Tansu, each started for this module so freezing them disturbs no other test."""

from __future__ import annotations

import signal
import time

import pytest

from service.api.app import create_app
from service.readiness import kafka_answers
from tests.conftest import serving
from tests.integration.nrt_helpers import nrt_settings
from tests.integration.servers import redis_server, tansu_broker


@pytest.fixture(scope="module")
def servers():
    with tansu_broker() as broker, redis_server() as redis:
        yield broker, redis


def wait_for(client, status: int, *, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while (response := client.get("/readyz")).status_code != status:
        assert time.monotonic() < deadline, f"/readyz stayed {response.status_code}: {response.text}"
        time.sleep(0.2)
    return response


@pytest.fixture()
def frozen():
    paused = []

    def freeze(address) -> None:
        address.process.send_signal(signal.SIGSTOP)
        paused.append(address.process)

    yield freeze
    for process in paused:  # whatever the test did, nothing stays frozen
        process.send_signal(signal.SIGCONT)


def test_readyz_names_a_frozen_dependency_and_recovers_without_restart(servers, model_repo, tmp_path, frozen) -> None:
    broker, redis = servers
    settings = nrt_settings(kafka_bootstrap=broker, redis_url=redis, model_repo=model_repo, state_dir=tmp_path,
                            readiness_cache_s=0, redis_timeout_s=1.0)
    with serving(create_app(settings)) as client:
        assert client.get("/readyz").json()["status"] == "ready"

        frozen(redis)
        down = wait_for(client, 503).json()["error"]
        assert down["code"] == "dependency_unavailable" and "redis does not answer" in down["message"], down
        assert "broker" not in down["message"]
        assert client.get("/healthz").status_code == 200  # liveness stays liveness
        redis.process.send_signal(signal.SIGCONT)
        assert wait_for(client, 200).json()["status"] == "ready"

        frozen(broker)
        down = wait_for(client, 503).json()["error"]
        assert "broker does not answer" in down["message"] and "redis" not in down["message"], down
        broker.process.send_signal(signal.SIGCONT)
        assert wait_for(client, 200).json()["status"] == "ready"


def test_the_broker_check_needs_a_kafka_answer_not_just_an_open_port(servers, frozen) -> None:
    broker, _ = servers
    kafka_answers(broker, timeout_s=1.0)
    frozen(broker)
    started = time.monotonic()
    with pytest.raises(OSError):
        kafka_answers(broker, timeout_s=0.5)
    assert time.monotonic() - started < 3.0  # bounded by the timeout, not kafka-python's retries
    broker.process.send_signal(signal.SIGCONT)
    kafka_answers(broker, timeout_s=2.0)
