"""Fixtures for tests that need real servers (each started once per session on a free loopback port)."""

from __future__ import annotations

import pytest

from tests.integration.servers import redis_server, tansu_broker
from tests.integration.triton_server import triton, triton_repo  # noqa: F401 - session fixtures (real tritonserver)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """A running Tansu broker (Kafka protocol, in-memory storage): ``127.0.0.1:PORT``."""
    with tansu_broker() as address:
        yield address


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A running redis-server without persistence: ``redis://127.0.0.1:PORT/0``."""
    with redis_server() as url:
        yield url
