"""Every error leaves the API in one shape, converted here and nowhere else.

``{"error": {"code": "...", "message": "..."}}``. Domain errors (``service.errors``) map to a
status by class; request validation answers 422 with the failing fields named, 400 for a body
that is not JSON, 413 for a list over its size limit; 503s carry ``Retry-After``. Anything
unexpected is logged and answers a bare 500 without internals.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from service.errors import (
    DependencyUnavailable,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ShopRankError,
    StaleVersion,
    Unauthorized,
    UnknownProfile,
)

log = logging.getLogger(__name__)

# First match wins, so subclasses come before their bases.
STATUS_BY_ERROR: tuple[tuple[type[ShopRankError], int], ...] = (
    (UnknownProfile, 422),  # a bad field value, not a missing resource
    (NotFound, 404),
    (InvalidInput, 422),
    (PayloadTooLarge, 413),
    (StaleVersion, 409),
    (Unauthorized, 401),
    (DependencyUnavailable, 503),  # NotReady included
)
CODE_BY_STATUS = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
                  409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_input"}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def status_for(exc: ShopRankError) -> int:
    return next((status for cls, status in STATUS_BY_ERROR if isinstance(exc, cls)), 500)


async def on_domain_error(request: Request, exc: ShopRankError) -> Response:
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, DependencyUnavailable) else None
    return error_response(status_for(exc), exc.code, exc.message, headers)


def _field(loc: tuple) -> str:
    """``("body", "items", 3, "title")`` → ``items.3.title``; a query/path parameter keeps its name."""
    parts = [str(p) for p in (loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)]
    return ".".join(parts) or "body"


async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        reason = (bad_json.get("ctx") or {}).get("error", "invalid JSON")
        return error_response(400, "malformed_json", f"request body is not valid JSON: {reason}")
    if errors and all(e.get("type") == "too_long" and isinstance(e.get("input"), list) for e in errors):
        e = errors[0]
        limit = (e.get("ctx") or {}).get("max_length")
        return error_response(413, "payload_too_large",
                              f"{_field(e['loc'])}: {len(e['input'])} entries, at most {limit} per request")
    message = "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in errors[:5])
    return error_response(422, "invalid_input", message)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette's 405 names only the first route that
    matched the path (``Allow: GET`` for ``/v1/items/{id}``, which also serves PUT and DELETE)."""
    methods: set[str] = set()
    for route in _leaf_routes(request.app.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _leaf_routes(routes):
    """The routes themselves: FastAPI wraps an included router (no prefix here) in one that has none of them."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from _leaf_routes(inner.routes) if inner is not None else (route,)


async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        headers = (headers or {}) | {"Allow": ", ".join(allowed_methods(request))}
    return error_response(exc.status_code, CODE_BY_STATUS.get(exc.status_code, "http_error"), str(exc.detail),
                          headers)


async def on_unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ShopRankError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
