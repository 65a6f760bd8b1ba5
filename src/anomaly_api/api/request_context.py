"""Per-request context: request id, one access-log line and the HTTP metrics (only those).

A pure ASGI middleware (not ``BaseHTTPMiddleware``), so it adds no task hop and sees
the final status even of error responses. What only the prediction path knows (rows,
cache hits, model version) reaches the log line through ``note_scored_batch``, a
``DataPlane`` hook; the prediction metrics are recorded by the ``DataPlane`` itself.
Headers are never logged, so API keys cannot reach the logs.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anomaly_api.service.dataplane import ScoredBatch
from anomaly_api.service.metrics import ServiceMetrics

__all__ = [
    "REQUEST_ID_HEADER",
    "RequestContext",
    "RequestContextMiddleware",
    "accept_request_id",
    "current_request_id",
    "note_scored_batch",
]

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_CHARS = re.compile(r"^[A-Za-z0-9._:@/+=-]+$")
_access_log = logging.getLogger("anomaly_api.access")


@dataclass
class RequestContext:
    """What the access log says about one request; ``note_scored_batch`` fills the rest."""

    request_id: str
    rows: int | None = None
    cache_hits: int | None = None
    model_version: str | None = None


_current: ContextVar[RequestContext | None] = ContextVar("anomaly_request", default=None)


def current_request_id() -> str | None:
    """The id of the request being served, for error bodies."""
    context = _current.get()
    return context.request_id if context else None


def note_scored_batch(scored: ScoredBatch) -> None:
    """``DataPlane`` hook: rows, cache hits and model version for the request's log line."""
    context = _current.get()
    if context is None:  # scored outside a request (a script, a test)
        return
    context.rows = scored.rows
    context.cache_hits = scored.cache_hits
    context.model_version = scored.model_version


def accept_request_id(value: str | None, max_length: int) -> str:
    """Keep a well-formed incoming id (printable token, bounded); otherwise make a new one.

    Refusing a request over a malformed tracing header would be worse than replacing it.
    """
    if value and len(value) <= max_length and _REQUEST_ID_CHARS.fullmatch(value):
        return value
    return uuid.uuid4().hex


def _route_template(scope: Scope) -> str:
    """The matched route's path template, so metric labels stay few (``unmatched`` for 404s)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestContextMiddleware:
    """Assign the request id, echo it, time the request, count it and log it once."""

    def __init__(
        self, app: ASGIApp, *, metrics: ServiceMetrics, max_request_id_length: int = 128
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_request_id_length = max_request_id_length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        context = RequestContext(accept_request_id(incoming, self.max_request_id_length))
        token = _current.set(context)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = context.request_id
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.in_progress.dec()
            route = _route_template(scope)
            self.metrics.observe_request(scope["method"], route, status, elapsed)
            _log_access(scope, route, status, elapsed, context)
            _current.reset(token)


def _log_access(
    scope: Scope, route: str, status: int, elapsed: float, context: RequestContext
) -> None:
    level = logging.ERROR if status >= 500 else logging.INFO
    _access_log.log(
        level,
        "%s %s %d",
        scope["method"],
        route,
        status,
        extra={
            "request_id": context.request_id,
            "method": scope["method"],
            "route": route,
            "path": scope["path"],
            "status": status,
            "latency_ms": round(elapsed * 1000, 3),
            "rows": context.rows,
            "cache_hits": context.cache_hits,
            "model_version": context.model_version,
        },
    )
