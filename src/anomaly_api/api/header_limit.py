"""Refuse requests whose headers exceed a size limit (431), before any route runs.

uvicorn's default HTTP parser (httptools) puts no bound on header size, so a client could
send megabytes of headers with every request. The bound belongs in the reverse proxy
too; this check makes the service safe on its own and answers in the API's error format.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from anomaly_api.api.errors import HeadersTooLargeError, send_error

__all__ = ["HeaderSizeLimitMiddleware"]


class HeaderSizeLimitMiddleware:
    """Caps the total size of names and values of the request headers at ``max_header_bytes``."""

    def __init__(self, app: ASGIApp, *, max_header_bytes: int) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > self.max_header_bytes:
                exc = HeadersTooLargeError(
                    f"request headers are {size} bytes; the limit is {self.max_header_bytes}"
                )
                await send_error(exc, scope, receive, send, {"Connection": "close"})
                return
        await self.app(scope, receive, send)
