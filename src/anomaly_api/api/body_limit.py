"""Pure ASGI middleware that refuses requests above the size limits before any route runs:
headers (431) and bodies (413), in one pass over the headers.

uvicorn's default HTTP parser (httptools) puts no bound on header size, so a client could
send megabytes of headers with every request. The bound belongs in the reverse proxy
too; this check makes the service safe on its own and answers in the API's error format.
The headers are checked first: a request over both limits gets the 431.

A declared ``Content-Length`` above the limit is answered with 413 without parsing the
body; one within it is passed through untouched (the HTTP server delivers no more than the
declared bytes), so the hot routes pay no wrapped ``receive`` and ``send``. Bodies without
one (chunked) are counted as they stream in, and reading stops with
``PayloadTooLargeError`` (413) as soon as the limit is passed.

Lingering close: clients such as Python's ``urllib`` write the whole body before they read
the answer. If the server answered and closed with the rest of the body unread, the kernel
would send a TCP reset and such a client would see ``ConnectionResetError`` instead of the
413. So, as nginx's lingering close does, the rest of an oversized body is received and
thrown away (never buffered) before the 413 is sent, up to ``max_discard_bytes`` in all and
for at most ``max_discard_s``. The 413 carries ``Connection: close``. A body declared larger
than the discard bound is not read at all, and one that crosses the bound (or the time
bound) while being discarded is left unread: the answer is sent and the connection closed
at once, as before, and such a client may see a reset. A request with
``Expect: 100-continue`` is answered before its body is sent, so nothing is discarded.

The discarding happens before the answer because uvicorn's ``receive()`` returns
``http.disconnect`` once the response is complete: a body cannot be drained after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anomaly_api.api.errors import HeadersTooLargeError, PayloadTooLargeError, send_error

__all__ = ["SizeLimitMiddleware", "discard_body"]


async def discard_body(receive: Receive, already: int, max_bytes: int, max_s: float) -> bool:
    """Receive and drop the rest of a request body; True once it has all been read.

    ``already`` bytes of the body were received; reading stops (False) when the total
    would pass ``max_bytes``, after ``max_s`` seconds, or when the client disconnects.
    """
    total = already

    async def drain() -> bool:
        nonlocal total
        while total <= max_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return False  # http.disconnect
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                return total <= max_bytes
        return False

    try:
        return await asyncio.wait_for(drain(), timeout=max_s)
    except TimeoutError:
        return False


UploadRoute = Callable[[Scope], bool]
"""Whether a request is an upload, bounded by its own larger limit."""


class SizeLimitMiddleware:
    """Caps the total size of the request headers' names and values at
    ``max_header_bytes`` (None: no bound) and request bodies at ``max_body_bytes``
    (uploads at ``max_upload_bytes``); discards the rest of a refused body (up to
    ``max_discard_bytes``, for at most ``max_discard_s``) before answering 413."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_header_bytes: int | None = None,
        max_discard_bytes: int = 16 * 1024 * 1024,
        max_discard_s: float = 5.0,
        is_upload: UploadRoute | None = None,
        max_upload_bytes: int = 0,
    ) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.is_upload = is_upload
        self.max_upload_bytes = max_upload_bytes
        self.max_discard_bytes = max_discard_bytes
        self.max_discard_s = max_discard_s

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Answer 413 and close, in the Open Inference Protocol's error format under /v2."""
        await send_error(self._too_large(limit), scope, receive, send, {"Connection": "close"})

    @staticmethod
    def _too_large(limit: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(f"request body is larger than the limit of {limit} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        if self.is_upload is not None and self.is_upload(scope):
            limit = self.max_upload_bytes
        expects_continue = chunked = False
        declared: int | None = None
        size = 0
        for name, value in scope["headers"]:
            size += len(name) + len(value)
            if name == b"content-length" and value.isdigit():
                declared = int(value)
            elif name == b"expect" and value.lower() == b"100-continue":
                expects_continue = True
            elif name == b"transfer-encoding":
                chunked = True
        if self.max_header_bytes is not None and size > self.max_header_bytes:
            exc = HeadersTooLargeError(
                f"request headers are {size} bytes; the limit is {self.max_header_bytes}"
            )
            await send_error(exc, scope, receive, send, {"Connection": "close"})
            return
        # Discard only what a client is already sending: not a body announced beyond the
        # bound, and not one that waits for a "100 Continue" (asking for it would let it come).
        may_discard = not expects_continue

        if declared is not None and declared > limit:
            if may_discard and declared <= self.max_discard_bytes:
                await discard_body(receive, 0, self.max_discard_bytes, self.max_discard_s)
            await self._refuse(scope, receive, send, limit)
            return
        if declared is not None and not chunked:  # within the limit: nothing more can come
            await self.app(scope, receive, send)
            return

        received = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if may_discard and message.get("more_body", False):
                        await discard_body(
                            receive, received, self.max_discard_bytes, self.max_discard_s
                        )
                    raise self._too_large(limit)
            return message

        async def closing_send(message: Message) -> None:
            if refused and message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, limited_receive, closing_send)
