"""``RequestContextMiddleware`` in isolation: the request id it puts on every response."""

from __future__ import annotations

import os
import uuid

import pytest
from starlette.types import Message, Receive, Scope, Send

from anomaly_api.api.request_context import RequestContextMiddleware, new_request_id
from anomaly_api.service.metrics import ServiceMetrics


async def _headers_sent(
    own: list[tuple[bytes, bytes]], request_id: bytes
) -> list[tuple[bytes, bytes]]:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(own)})
        await send({"type": "http.response.body", "body": b""})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    app = RequestContextMiddleware(inner, metrics=ServiceMetrics(anomaly_window=10))
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "headers": [(b"x-request-id", request_id)],
    }
    await app(scope, receive, send)
    return list(sent[0]["headers"])


async def test_the_id_is_appended_after_the_responses_own_headers() -> None:
    own = [(b"content-type", b"text/plain"), (b"content-length", b"0")]
    assert await _headers_sent(own, b"abc") == [*own, (b"x-request-id", b"abc")]


async def test_an_id_the_response_carried_is_replaced_in_its_place() -> None:
    own = [(b"x-request-id", b"old"), (b"content-length", b"0"), (b"x-request-id", b"old2")]
    assert await _headers_sent(own, b"abc") == [
        (b"x-request-id", b"abc"),
        (b"content-length", b"0"),
    ]


def test_a_new_id_is_uuid4_hex(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw in (bytes(16), b"\xff" * 16, bytes(range(16)), os.urandom(16)):
        monkeypatch.setattr(os, "urandom", lambda n, raw=raw: raw[:n])
        assert new_request_id() == uuid.UUID(bytes=raw, version=4).hex
