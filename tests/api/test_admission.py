"""Admission control in front of an app that holds its requests until told to finish."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from anomaly_api.api.admission import AdmissionControlMiddleware, is_exempt


class HeldApp:
    """Answers 200 once ``release`` is set; counts the requests it started."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self._arrived: asyncio.Queue[None] = asyncio.Queue()

    async def wait_started(self, n: int) -> None:
        """Return once ``n`` more requests have started."""
        for _ in range(n):
            await self._arrived.get()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.started += 1
        self._arrived.put_nowait(None)
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app: Any, path: str) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": []}
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/predict",
            {
                "error": {
                    "code": "overloaded",
                    "message": "the service is serving its limit of 2 requests; retry in 3 s",
                    "details": None,
                    "request_id": None,
                }
            },
        ),
        (
            "/v2/models/anomaly/infer",
            {"error": "the service is serving its limit of 2 requests; retry in 3 s"},
        ),
    ],
)
async def test_past_the_bound_a_request_is_answered_503_at_once(
    path: str, body: dict[str, Any]
) -> None:
    inner, shed = HeldApp(), []
    app = AdmissionControlMiddleware(
        inner, max_in_flight=2, retry_after_s=3, on_shed=lambda: shed.append(1)
    )
    held = [asyncio.create_task(call(app, path)) for _ in range(2)]
    await inner.wait_started(2)
    refused = await call(app, path)  # returns although the first two are still held
    assert refused[0]["status"] == 503
    assert (b"retry-after", b"3") in refused[0]["headers"]
    assert json.loads(refused[1]["body"]) == body
    assert (inner.started, len(shed), app.in_flight) == (2, 1, 2)
    # Health and metrics are served whatever the load.
    probes = [asyncio.create_task(call(app, p)) for p in ("/health/ready", "/metrics")]
    await inner.wait_started(2)
    inner.release.set()
    for task in [*held, *probes]:
        assert (await task)[0]["status"] == 200
    assert app.in_flight == 0
    assert (await call(app, path))[0]["status"] == 200  # a slot is free again


async def test_zero_means_no_bound() -> None:
    inner = HeldApp()
    app = AdmissionControlMiddleware(inner, max_in_flight=0, retry_after_s=1, on_shed=list)
    tasks = [asyncio.create_task(call(app, "/predict")) for _ in range(50)]
    await inner.wait_started(50)
    inner.release.set()
    assert [(await t)[0]["status"] for t in tasks] == [200] * 50


async def test_a_failing_request_frees_its_slot() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    app = AdmissionControlMiddleware(failing, max_in_flight=1, retry_after_s=1, on_shed=list)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await call(app, "/predict")
    assert app.in_flight == 0


@pytest.mark.parametrize(
    ("path", "exempt"),
    [
        ("/health", True),
        ("/health/ready", True),
        ("/metrics", True),
        ("/v2/health/live", True),
        ("/predict", False),
        ("/v2/models/anomaly/ready", False),
        ("/admin/reload", False),
    ],
)
def test_which_routes_are_exempt(path: str, exempt: bool) -> None:
    assert is_exempt(path) is exempt
