"""Fixtures for the stream-store tests: both backends, the shared Redis with a private prefix,
a throwaway Redis to kill, and a fake clock for the in-memory store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from stream_clock import FakeClock

from anomaly_api.config import Settings
from anomaly_api.service.streams import InMemoryStreamStore, RedisStreamStore, StreamStore
from anomaly_api.testing import SHARED_REDIS_URL


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def shared_settings() -> Iterator[Settings]:
    """Settings for the shared Redis with a key prefix of this test alone; keys deleted after."""
    prefix = f"test:streams:{uuid.uuid4().hex}:"
    # A generous timeout: these tests check behaviour, not latency, on a possibly busy box.
    yield Settings(
        redis_url=SHARED_REDIS_URL,
        stream_prefix=prefix,
        redis_timeout_s=2.0,
        stream_max_streams=100,
        stream_idle_ttl_s=600.0,
    )
    with redis.Redis.from_url(SHARED_REDIS_URL) as client:
        stale = list(client.scan_iter(match=prefix + "*", count=1000))
        if stale:
            client.delete(*stale)


def make_store(kind: str, settings: Settings, clock: FakeClock) -> StreamStore:
    if kind == "redis":
        return RedisStreamStore.from_settings(settings)
    return InMemoryStreamStore(
        max_streams=settings.stream_max_streams,
        idle_ttl_s=settings.stream_idle_ttl_s,
        max_window=settings.stream_max_window,
        clock=clock,
    )


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, shared_settings: Settings, clock: FakeClock
) -> AsyncIterator[StreamStore]:
    """Each backend in turn (Redis: the shared server, this test's prefix)."""
    built = make_store(request.param, shared_settings, clock)
    yield built
    await built.close()


@pytest.fixture
async def redis_store(shared_settings: Settings) -> AsyncIterator[RedisStreamStore]:
    built = RedisStreamStore.from_settings(shared_settings)
    yield built
    await built.close()
