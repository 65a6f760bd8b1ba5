"""Admission control: past ``max_in_flight`` requests at once, answer 503 at once.

A saturated server that queues every request answers all of them late; one that refuses
what it cannot start soon keeps the accepted requests' latency flat, and the refused ones
are retried (``Retry-After``) by the load balancer or the client. Health and metrics
routes are never refused: probes and scrapes must see an overloaded server as alive.
Pure ASGI (no request object, one counter) so that the hot path pays next to nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from anomaly_api.api.errors import OIP_PREFIX, OverloadedError, send_error

__all__ = ["AdmissionControlMiddleware", "is_exempt"]

_EXEMPT_PREFIXES = ("/health", "/metrics", OIP_PREFIX + "/health/")


def is_exempt(path: str) -> bool:
    """Whether ``path`` is a health or metrics route, served whatever the load."""
    return path.startswith(_EXEMPT_PREFIXES)


class AdmissionControlMiddleware:
    """Serves at most ``max_in_flight`` requests at once (0: no bound); the others get
    503 ``overloaded`` with ``Retry-After: retry_after_s`` and ``on_shed`` is called."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        retry_after_s: int,
        on_shed: Callable[[], object],
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.on_shed = on_shed
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.max_in_flight or is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.on_shed()
            exc = OverloadedError(
                f"the service is serving its limit of {self.max_in_flight} requests; "
                f"retry in {self.retry_after_s} s",
                retry_after_s=self.retry_after_s,
            )
            await send_error(exc, scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
