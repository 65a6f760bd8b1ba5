"""Pure ASGI middleware that refuses bodies above the size limit before they are parsed.

A declared ``Content-Length`` above the limit is answered with 413 at once, without
reading the body. Bodies without one (chunked) are counted as they stream in, and
reading stops with ``PayloadTooLargeError`` (413) as soon as the limit is passed.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anomaly_api.api.errors import (
    PayloadTooLargeError,
    error_response,
    is_oip_path,
    oip_error_response,
    status_of,
)

__all__ = ["BodySizeLimitMiddleware"]


class BodySizeLimitMiddleware:
    """Caps request bodies at ``max_body_bytes``."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _too_large(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"request body is larger than the limit of {self.max_body_bytes} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                exc = self._too_large()
                status_code, code = status_of(exc)
                headers = {"Connection": "close"}
                if is_oip_path(scope["path"]):
                    response = oip_error_response(status_code, exc.message, headers)
                else:
                    response = error_response(status_code, code, exc.message, headers=headers)
                await response(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)
