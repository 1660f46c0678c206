"""Structured JSON logs with a request id, for the API and the indexer.

- ``configure_logging(settings)`` installs one stderr handler on the root logger: one JSON
  object per line (``log_format="json"``, the default, for log shippers) or plain text.
- ``RequestContextMiddleware`` (pure ASGI, so the context variable reaches sync routes run in
  the thread pool) takes the caller's ``X-Request-ID`` when it is sane or makes one, returns it
  in the response header, and writes one access line per request (method, path, status, ms).
  Every record logged while the request runs carries its ``request_id``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.settings import ServerSettings

request_id_var: ContextVar[str | None] = ContextVar("shoprank_request_id", default=None)

_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
access_log = logging.getLogger("shoprank.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request id and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry |= {key: value for key, value in vars(record).items() if key not in _STANDARD}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


JsonFormatter.converter = time.gmtime


def configure_logging(settings: ServerSettings) -> None:
    """Route every logger through one stderr handler in the configured format (idempotent).

    The level is the more verbose of ``SHOPRANK_LOG_LEVEL`` and what the root logger already has
    (``shoprank --log-level`` sets it before any command runs).
    """
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(min(logging.getLevelName(settings.log_level.upper()), root.level or logging.WARNING))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []  # let them propagate to the one handler
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # RequestContextMiddleware writes the access line


def incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The caller's ``X-Request-ID`` if it is short and printable, else None (a new one is made)."""
    for key, value in headers:
        if key.lower() == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE_ID.match(text) else None
    return None


class RequestContextMiddleware:
    """Request id in a context variable and the response header, plus one access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope.get("headers", [])) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info("%s %s %d", scope["method"], scope["path"], status,
                            extra={"method": scope["method"], "path": scope["path"], "status": status,
                                   "duration_ms": round((time.perf_counter() - start) * 1000, 2)})
            request_id_var.reset(token)
