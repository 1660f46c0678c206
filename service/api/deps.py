"""Typed dependencies, so each route's signature shows what it needs (``RuntimeDep``, ``SettingsDep``).

The only code that reads ``app.state``: routes never touch it, they declare a dependency.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from service.api.lifespan import RuntimeHolder
from service.errors import Unauthorized
from service.runtime import Runtime
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_holder(request: Request) -> RuntimeHolder:
    return request.app.state.runtime_holder


def get_runtime(request: Request) -> Runtime:
    """The ready runtime; raises ``NotReady`` (503 + Retry-After) while models and indexes load."""
    return get_holder(request).get()


SettingsDep = Annotated[Settings, Depends(get_settings)]
HolderDep = Annotated[RuntimeHolder, Depends(get_holder)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def require_api_key(settings: SettingsDep,
                    x_api_key: Annotated[str | None, Header(description="needed when SHOPRANK_API_KEY is set")] = None,
                    ) -> None:
    """Write and admin endpoints: when an API key is configured, the ``X-API-Key`` header must match."""
    if settings.api_key is None:
        return
    if x_api_key is None or not secrets.compare_digest(x_api_key.encode(), settings.api_key.encode()):
        raise Unauthorized("missing or wrong X-API-Key header")


ApiKeyRequired = Depends(require_api_key)
