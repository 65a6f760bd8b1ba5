"""``SizeLimitMiddleware`` in isolation: what it reads of a refused body, and when it stops.

A scripted ASGI ``receive`` hands out the body in chunks and counts what was taken, so each
test sees exactly how much of an oversized body is discarded before the 413 goes out. The
same behaviour over real sockets is in ``tests/e2e/test_lingering_413.py``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from anomaly_api.api.body_limit import SizeLimitMiddleware
from anomaly_api.api.errors import ApiError, render_error

LIMIT = 1024
CHUNK = 256


class ScriptedClient:
    """``receive``/``send`` of one request whose body comes in ``CHUNK``-byte pieces.

    ``body_size`` None means a body that never ends; ``stall_after`` makes ``receive`` hang
    (as a client that stopped sending) once that many bytes were handed out.
    """

    def __init__(
        self,
        body_size: int | None,
        *,
        stall_after: int | None = None,
        disconnect_after: int | None = None,
    ) -> None:
        self.body_size = body_size
        self.stall_after = stall_after
        self.disconnect_after = disconnect_after
        self.handed_out = 0
        self.sent: list[Message] = []
        self.events: list[str] = []

    async def receive(self) -> Message:
        if self.stall_after is not None and self.handed_out >= self.stall_after:
            await asyncio.Event().wait()
        if self.disconnect_after is not None and self.handed_out >= self.disconnect_after:
            return {"type": "http.disconnect"}
        remaining = CHUNK if self.body_size is None else self.body_size - self.handed_out
        size = min(CHUNK, remaining)
        self.handed_out += size
        self.events.append("receive")
        more = self.body_size is None or self.handed_out < self.body_size
        return {"type": "http.request", "body": b" " * size, "more_body": more}

    async def send(self, message: Message) -> None:
        self.events.append(message["type"])
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def error(self) -> Any:
        return json.loads(self.sent[1]["body"])["error"]


async def reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, answers 200; an API error becomes its response (as the
    app's exception handlers do)."""
    try:
        while (await receive()).get("more_body", False):
            pass
    except ApiError as exc:
        await render_error(exc, scope)(scope, receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def scope(headers: dict[str, str]) -> Scope:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "method": "POST", "path": "/predict", "headers": raw}


async def run(
    client: ScriptedClient,
    headers: dict[str, str],
    *,
    max_discard_bytes: int = 8192,
    max_discard_s: float = 5.0,
) -> None:
    middleware = SizeLimitMiddleware(
        reading_app,
        max_body_bytes=LIMIT,
        max_discard_bytes=max_discard_bytes,
        max_discard_s=max_discard_s,
    )
    await asyncio.wait_for(middleware(scope(headers), client.receive, client.send), timeout=10)


async def test_a_declared_oversized_body_is_read_to_its_end_before_the_413() -> None:
    client = ScriptedClient(4096)
    await run(client, {"content-length": "4096"})
    assert client.handed_out == 4096
    assert client.events.index("http.response.start") > client.events.index("receive")
    assert client.events[-2:] == ["http.response.start", "http.response.body"]
    assert client.status == 413
    assert client.headers[b"connection"] == b"close"
    assert client.error["code"] == "payload_too_large"


async def test_a_declared_body_beyond_the_discard_bound_is_not_read() -> None:
    client = ScriptedClient(100_000)
    await run(client, {"content-length": "100000"})
    assert client.handed_out == 0
    assert client.status == 413
    assert client.headers[b"connection"] == b"close"


async def test_expect_100_continue_is_answered_unread() -> None:
    """Reading would make uvicorn send "100 Continue" and invite the body we refuse."""
    client = ScriptedClient(4096)
    await run(client, {"content-length": "4096", "expect": "100-continue"})
    assert client.handed_out == 0
    assert client.status == 413


async def test_a_streamed_body_crossing_the_limit_is_discarded_to_its_end() -> None:
    client = ScriptedClient(6000)
    await run(client, {"transfer-encoding": "chunked"})
    assert client.handed_out == 6000
    assert client.status == 413
    assert client.headers[b"connection"] == b"close"
    assert client.error["code"] == "payload_too_large"


async def test_an_endless_streamed_body_is_discarded_only_up_to_the_bound() -> None:
    client = ScriptedClient(None)
    await run(client, {"transfer-encoding": "chunked"}, max_discard_bytes=8192)
    assert 8192 <= client.handed_out <= 8192 + CHUNK
    assert client.status == 413
    assert client.headers[b"connection"] == b"close"


async def test_a_stalled_client_is_answered_after_the_time_bound() -> None:
    client = ScriptedClient(4096, stall_after=2048)
    await run(client, {"content-length": "4096"}, max_discard_s=0.05)
    assert client.handed_out == 2048
    assert client.status == 413


async def test_a_client_that_disconnects_while_discarding_ends_the_discard() -> None:
    client = ScriptedClient(None, disconnect_after=3000)
    await run(client, {"transfer-encoding": "chunked"})
    assert client.handed_out == 3072  # whole chunks up to the disconnect
    assert client.status == 413


async def test_zero_discard_bytes_never_discards() -> None:
    client = ScriptedClient(4096)
    await run(client, {"content-length": "4096"}, max_discard_bytes=0)
    assert client.handed_out == 0
    assert client.status == 413


async def test_bodies_within_the_limit_pass_untouched() -> None:
    client = ScriptedClient(LIMIT)
    await run(client, {"content-length": str(LIMIT)})
    assert client.handed_out == LIMIT
    assert client.status == 200
    assert b"connection" not in client.headers


async def test_a_declared_body_within_the_limit_reaches_the_app_unwrapped() -> None:
    seen: list[tuple[Receive, Send]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((receive, send))
        await reading_app(scope, receive, send)

    client = ScriptedClient(LIMIT)
    middleware = SizeLimitMiddleware(inner, max_body_bytes=LIMIT)
    await middleware(scope({"content-length": str(LIMIT)}), client.receive, client.send)
    assert seen == [(client.receive, client.send)]
    assert client.status == 200


async def test_a_chunked_body_with_a_length_too_is_still_counted() -> None:
    client = ScriptedClient(None)
    await run(client, {"content-length": "10", "transfer-encoding": "chunked"})
    assert client.status == 413
