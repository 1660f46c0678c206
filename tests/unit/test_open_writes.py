"""A shared deployment (Kafka or Redis configured) refuses to serve open writes unless told to."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.settings import Settings

SHARED = {"redis_url": "redis://127.0.0.1:1/0"}


@pytest.mark.parametrize("overrides", [{}, {"kafka_bootstrap": "127.0.0.1:1", "api_key": "k-2f9c1e7a"}, SHARED | {"api_key": "s3cr3t-k3y-1"},
                                       SHARED | {"allow_open_writes": True}])
def test_allowed(overrides) -> None:
    assert Settings(**overrides).open_writes_refusal() is None


@pytest.mark.parametrize("key", [None, "", "  ", "change-me", "CHANGE-ME", "changeme", "placeholder"])
def test_refused_without_a_real_key(key) -> None:
    reason = Settings(**SHARED, api_key=key).open_writes_refusal()
    assert reason is not None and "SHOPRANK_API_KEY" in reason and "SHOPRANK_ALLOW_OPEN_WRITES" in reason


def test_serve_refuses_before_loading_anything(monkeypatch) -> None:
    monkeypatch.setenv("SHOPRANK_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("SHOPRANK_API_KEY", "change-me")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code != 0 and "placeholder 'change-me'" in result.output
