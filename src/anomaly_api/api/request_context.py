"""Per-request context: request id, one access-log line and the HTTP metrics (only those).

A pure ASGI middleware (not ``BaseHTTPMiddleware``), so it adds no task hop and sees
the final status even of error responses. What only the prediction path knows (rows,
cache hits, model version) reaches the log line through ``note_scored_batch``, a
``DataPlane`` hook; the prediction metrics are recorded by the ``DataPlane`` itself.
Headers are never logged, so API keys cannot reach the logs.
"""

from __future__ import annotations

import logging
import os
import re
import time
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
    "new_request_id",
    "note_scored_batch",
]

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")
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
    return new_request_id()


_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))  # the variant and version bits
_UUID4_SET = (0x8000 << 48) | (4 << 76)  # RFC 4122 variant, version 4
_ID_BATCH = 256
"""Request ids made from one ``os.urandom`` call: its system call costs more than the rest."""
_spare_ids: list[str] = []
os.register_at_fork(after_in_child=_spare_ids.clear)  # a forked process draws its own


def _uuid4_hex(raw: bytes) -> list[str]:
    """Every 16 bytes of ``raw`` as ``uuid.UUID(bytes=..., version=4).hex`` without the
    ``UUID`` object, whose checks cost more than the rest: the version and variant bits
    set, as 32 hex digits."""
    return [
        f"{int.from_bytes(raw[i : i + 16], 'big') & _UUID4_CLEAR | _UUID4_SET:032x}"
        for i in range(0, len(raw), 16)
    ]


def new_request_id() -> str:
    """A random ``uuid.uuid4().hex``, from ids made ``_ID_BATCH`` at a time."""
    try:
        return _spare_ids.pop()
    except IndexError:
        _spare_ids.extend(_uuid4_hex(os.urandom(16 * _ID_BATCH)))
        return _spare_ids.pop()


def _echo_request_id(message: Message, value: str) -> None:
    """Set the id header on a response start as ``MutableHeaders`` would (one value, in
    place of any the response had), without building a headers object for each response."""
    headers = message.get("headers", [])
    if any(name == _REQUEST_ID_KEY for name, _ in headers):
        MutableHeaders(scope=message)[REQUEST_ID_HEADER] = value
    else:
        message["headers"] = [*headers, (_REQUEST_ID_KEY, value.encode("latin-1"))]


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
                _echo_request_id(message, context.request_id)
            await send(message)

        self.metrics.request_started()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.request_finished()
            route = _route_template(scope)
            self.metrics.observe_request(scope["method"], route, status, elapsed)
            _log_access(scope, route, status, elapsed, context)
            _current.reset(token)


def _log_access(
    scope: Scope, route: str, status: int, elapsed: float, context: RequestContext
) -> None:
    """The request's one line. The record is made and handled as ``Logger.log`` does with
    ``extra``, less its per-key clash check (these fields are no ``LogRecord``
    attribute) and its caller lookup (``configure_logging`` turns it off)."""
    level = logging.ERROR if status >= 500 else logging.INFO
    if not _access_log.isEnabledFor(level):
        return
    method = scope["method"]
    record = _access_log.makeRecord(
        _access_log.name, level, _NO_CALLER[0], 0, "%s %s %d", (method, route, status), None,
        _NO_CALLER[1],
    )  # fmt: skip
    fields = vars(record)
    fields["request_id"] = context.request_id
    fields["method"] = method
    fields["route"] = route
    fields["path"] = scope["path"]
    fields["status"] = status
    fields["latency_ms"] = round(elapsed * 1000, 3)
    fields["rows"] = context.rows
    fields["cache_hits"] = context.cache_hits
    fields["model_version"] = context.model_version
    _access_log.handle(record)


_NO_CALLER = ("(unknown file)", "(unknown function)")
"""What ``Logger.log`` records as the caller when the lookup is off."""
