"""One error format everywhere: unknown routes, body limits, and the catch-all 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx

from anomaly_api.api.app import create_app
from anomaly_api.config import Settings
from api_testing import NORMAL, assert_error, lifespan, serve_app

JSON = {"content-type": "application/json"}


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/nope"), 404, "not_found")
    wrong_method = await client.get("/predict")
    assert_error(wrong_method, 405, "method_not_allowed")
    assert "POST" in wrong_method.headers["allow"]


async def test_declared_body_above_the_limit_is_refused_unread(settings: Settings) -> None:
    settings = settings.model_copy(update={"max_body_bytes": 2048})
    async with serve_app(settings) as http:
        body = json.dumps({"features": NORMAL, "observation_id": "x" * 3000}).encode()
        response = await http.post("/predict", content=body, headers=JSON)
        assert_error(response, 413, "payload_too_large", "2048 bytes")
        ok = await http.post("/predict", json={"features": NORMAL})
        assert ok.status_code == 200


async def test_streamed_body_above_the_limit_is_refused(settings: Settings) -> None:
    """No Content-Length (chunked upload): counted while it streams in."""
    settings = settings.model_copy(update={"max_body_bytes": 2048})

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"observations": ['
        for _ in range(200):
            yield json.dumps({"features": NORMAL}).encode() + b","
        yield b'{"features": [1]}]}'

    async with serve_app(settings) as http:
        response = await http.post("/predict/batch", content=chunks(), headers=JSON)
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "payload_too_large")

        async def small() -> AsyncIterator[bytes]:
            yield json.dumps({"observations": [{"features": NORMAL}]}).encode()

        ok = await http.post("/predict/batch", content=small(), headers=JSON)
        assert ok.status_code == 200, ok.text


async def test_default_limit_is_one_mebibyte(client: httpx.AsyncClient) -> None:
    body = b'{"observations": [' + b" " * 1_048_577 + b"]}"
    assert_error(
        await client.post("/predict/batch", content=body, headers=JSON), 413, "payload_too_large"
    )


async def test_unexpected_errors_get_a_generic_500(settings: Settings) -> None:
    """The catch-all handler: no exception text or trace reaches the client."""
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    async with lifespan(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/boom")
    assert_error(response, 500, "internal_error", "internal server error")
    assert "secret" not in response.text
    assert "Traceback" not in response.text


async def test_client_leaving_mid_body_is_not_a_server_error(settings: Settings) -> None:
    """A client that disconnects while sending its body gets 499, not the 500 handler."""
    app = create_app(settings)
    messages: list[dict[str, object]] = [
        {"type": "http.request", "body": b'{"features": [0.5, 1.2', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async with lifespan(app) as manager:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/predict",
            "raw_path": b"/predict",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json")],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
        }
        await manager.app(scope, receive, send)  # raises if it reached the 500 handler
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 499
