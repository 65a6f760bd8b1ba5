"""``RequestContextMiddleware`` in isolation: the request id it puts on every response."""

from __future__ import annotations

import os
import uuid

from starlette.types import Message, Receive, Scope, Send

from anomaly_api.api.request_context import RequestContextMiddleware, _uuid4_hex, new_request_id
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


def test_new_ids_are_uuid4_hex() -> None:
    raws = [bytes(16), b"\xff" * 16, bytes(range(16)), os.urandom(16)]
    assert _uuid4_hex(b"".join(raws)) == [uuid.UUID(bytes=r, version=4).hex for r in raws]
    ids = [new_request_id() for _ in range(600)]  # across more than two draws of 256
    assert len(set(ids)) == 600
    assert all(uuid.UUID(hex=i).version == 4 and uuid.UUID(hex=i).hex == i for i in ids)


def test_a_forked_process_draws_ids_of_its_own() -> None:
    new_request_id()  # ids to spare in this process
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, then out at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 32
    assert child != new_request_id()  # the id this process had next
