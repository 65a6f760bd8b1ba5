"""Fixtures for the cache tests: the shared Redis with a private prefix, a throwaway one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from anomaly_api.config import Settings
from anomaly_api.service.cache import RedisPredictionCache
from anomaly_api.testing import SHARED_REDIS_URL


@pytest.fixture
def shared_settings() -> Iterator[Settings]:
    """Settings for the shared Redis with a key prefix of this test alone; keys deleted after."""
    prefix = f"test:cache:{uuid.uuid4().hex}:"
    # A generous timeout: these tests check behaviour, not latency, on a possibly busy CI box.
    yield Settings(
        redis_url=SHARED_REDIS_URL,
        prediction_cache="redis",
        cache_prefix=prefix,
        redis_timeout_s=2.0,
    )
    with redis.Redis.from_url(SHARED_REDIS_URL) as client:
        stale = list(client.scan_iter(match=prefix + "*", count=1000))
        if stale:
            client.delete(*stale)


@pytest.fixture
async def shared_cache(shared_settings: Settings) -> AsyncIterator[RedisPredictionCache]:
    """A Redis cache on the shared server, closed after the test."""
    cache = RedisPredictionCache.from_settings(shared_settings)
    yield cache
    await cache.close()
