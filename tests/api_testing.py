"""Helpers for tests that call the HTTP API in-process: apps over temporary artifact dirs.

Requests go through httpx over ASGI with the lifespan running (asgi-lifespan), so the
model is loaded exactly as in production. ``raise_app_exceptions`` stays on: an error
that escapes to the catch-all 500 handler fails the test that caused it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from anomaly_api.api.app import create_app
from anomaly_api.api.deps import AppState
from anomaly_api.config import Settings
from anomaly_api.service.runtime import ServiceRuntime
from anomaly_api.testing import SHARED_REDIS_URL
from factories import fit_tiny_artifact

NORMAL = [0.5, 1.2, -0.3, 0.8, 1.5, 0.2, -0.1, 0.9]
ANOMALOUS = [8.1, -5.3, 7.2, 9.0, -8.4, 6.1, 8.8, -7.2]


LIFESPAN_TIMEOUT_S = 60.0
"""A start-up or shutdown longer than asgi-lifespan's default 5 s is a slow machine, not a
failure: loading the model and freezing the heap take seconds on a loaded 2-core host."""


def lifespan(app: Any) -> LifespanManager:
    """``app``'s lifespan, run with ``LIFESPAN_TIMEOUT_S`` for its start-up and shutdown."""
    return LifespanManager(
        app, startup_timeout=LIFESPAN_TIMEOUT_S, shutdown_timeout=LIFESPAN_TIMEOUT_S
    )


def make_settings(artifacts_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test app: the in-process cache unless a Redis URL is given."""
    values: dict[str, Any] = {"artifacts_dir": artifacts_dir, "redis_url": None, **overrides}
    return Settings(**values)


@contextmanager
def stream_backend(kind: str, name: str) -> Iterator[dict[str, Any]]:
    """Settings of the stream store: ``{}`` (process memory) for ``"memory"``, else the shared
    Redis under a private prefix (``test:<name>:<random>:``), whose keys are deleted after."""
    if kind == "memory":
        yield {}
        return
    prefix = f"test:{name}:{uuid.uuid4().hex}:"
    yield {
        "redis_url": SHARED_REDIS_URL,
        "redis_timeout_s": 2.0,
        "stream_prefix": f"{prefix}s:",
        "cache_prefix": f"{prefix}c:",
        "revision_prefix": f"{prefix}r:",
    }
    with redis.Redis.from_url(SHARED_REDIS_URL) as client:
        stale = list(client.scan_iter(match=prefix + "*", count=1000))
        if stale:
            client.delete(*stale)


@asynccontextmanager
async def open_app_state(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, AppState]]:
    """A client of a freshly built app, and its lifespan state (for white-box checks)."""
    app = create_app(settings)
    async with (
        lifespan(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        ) as client,
    ):
        yield client, manager._state  # the AppState the lifespan yielded


@asynccontextmanager
async def open_app(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceRuntime]]:
    """A client of a freshly built app, and its runtime (for white-box checks)."""
    async with open_app_state(settings) as (client, state):
        yield client, state["runtime"]


@asynccontextmanager
async def serve_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a freshly built app whose lifespan runs around the block."""
    async with open_app(settings) as (client, _):
        yield client


def assert_error(response: httpx.Response, status: int, code: str, fragment: str = "") -> None:
    """The response is an error in the API's one format, with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details", "request_id"}
    assert body["error"]["code"] == code, body
    assert fragment in body["error"]["message"], body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A ``/metrics`` text as ``{(sample name, sorted labels): value}``."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def fit_two_versions(root: Path) -> Path:
    """``root`` holding two differently trained tiny models, ``tiny-1`` and ``tiny-2``."""
    fit_tiny_artifact(root, version="tiny-1", seed=0)
    fit_tiny_artifact(root, version="tiny-2", seed=1)
    return root
