"""Fail-open behaviour against a throwaway Redis that is killed, frozen and restarted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest

from anomaly_api.config import Settings
from anomaly_api.service.cache import RedisPredictionCache
from anomaly_api.testing import RedisServer

CALLS = 10  # get_many + set_many pairs while Redis is down


@pytest.fixture
async def cache(redis_server: RedisServer) -> AsyncIterator[RedisPredictionCache]:
    """Opens after 2 failures, tries again after 1 s (long next to a refused connect)."""
    settings = Settings(
        redis_url=redis_server.url,
        redis_timeout_s=0.2,
        redis_breaker_failures=2,
        redis_breaker_cooldown_s=1.0,
        cache_prefix="fault:",
    )
    cache = RedisPredictionCache.from_settings(settings)
    yield cache
    await cache.close()


async def _use_while_down(cache: RedisPredictionCache) -> None:
    for _ in range(CALLS):
        assert await cache.get_many(["fault:a", "fault:b"]) == [None, None]
        await cache.set_many({"fault:c": b"3"})


async def _wait_until_cached(cache: RedisPredictionCache, timeout_s: float = 15.0) -> None:
    """Keep using the cache, as requests would, until a write is read back."""
    deadline = time.monotonic() + timeout_s
    while True:
        await cache.set_many({"fault:back": b"yes"})
        if await cache.get_many(["fault:back"]) == [b"yes"]:
            return
        assert time.monotonic() < deadline, f"caching did not resume ({cache.breaker_state})"
        await asyncio.sleep(0.1)


def _assert_breaker_skipped_calls(cache: RedisPredictionCache) -> None:
    """Past the threshold, only one trial per cooldown reached Redis; the rest were skipped."""
    failed_trials = cache.breaker_opened_total - 1
    assert cache.breaker_opened_total >= 1
    assert cache.errors == 2 + failed_trials
    assert cache.skipped == 2 * CALLS - cache.errors
    assert cache.skipped > 0


async def test_killed_redis_fails_open_and_caching_resumes(
    cache: RedisPredictionCache, redis_server: RedisServer
) -> None:
    await cache.set_many({"fault:a": b"1"})
    assert await cache.get_many(["fault:a"]) == [b"1"]

    redis_server.kill()
    await _use_while_down(cache)
    assert cache.breaker_state != "closed"
    assert cache.breaker_state == "open"
    _assert_breaker_skipped_calls(cache)

    redis_server.start()  # same port, empty (nothing persisted)
    await _wait_until_cached(cache)
    assert cache.breaker_state == "closed"
    assert cache.breaker_state == "closed"


async def test_frozen_redis_times_out_then_resumes(
    cache: RedisPredictionCache, redis_server: RedisServer
) -> None:
    """A Redis that accepts but never answers (SIGSTOP) is cut off by the timeouts."""
    assert await cache.check()
    redis_server.freeze()
    await _use_while_down(cache)
    assert cache.breaker_state != "closed"
    _assert_breaker_skipped_calls(cache)

    redis_server.thaw()
    await _wait_until_cached(cache)
    assert cache.breaker_state == "closed"


async def test_health_probe_opens_and_closes_the_breaker(
    cache: RedisPredictionCache, redis_server: RedisServer
) -> None:
    assert await cache.check()
    redis_server.kill()
    assert not await cache.check()
    assert cache.breaker_state == "open"  # one failed probe is enough to report it
    assert cache.breaker_state != "closed"
    assert await cache.get_many(["fault:a"]) == [None]
    assert cache.skipped == 1

    redis_server.start()
    assert await cache.check()  # no cooldown wait: the probe closes the breaker
    assert cache.breaker_state == "closed"
    await cache.set_many({"fault:a": b"1"})
    assert await cache.get_many(["fault:a"]) == [b"1"]


async def test_dead_redis_does_not_spam_the_log(
    cache: RedisPredictionCache, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.kill()
    with caplog.at_level(logging.WARNING, logger="anomaly_api.service.cache"):
        await _use_while_down(cache)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # The first failure and the breaker opening; everything after is held back.
    assert 1 <= len(warnings) <= 2
    assert any("bypassing" in r.getMessage() for r in warnings)


async def test_a_connection_may_take_longer_to_open_than_a_call(
    redis_server: RedisServer,
) -> None:
    """Opening a connection (DNS, TCP, TLS) gets ``redis_connect_timeout_s``, which the
    probe's budget covers; an answer still has to come within ``redis_timeout_s``."""
    settings = Settings(
        redis_url=redis_server.url, redis_timeout_s=0.1, redis_connect_timeout_s=3.0
    )
    cache = RedisPredictionCache.from_settings(settings)
    try:
        options = cache._client.connection_pool.connection_kwargs
        assert (options["socket_connect_timeout"], options["socket_timeout"]) == (3.0, 0.1)
        assert cache._probe_timeout_s == 3.0
        assert cache._call_timeout_s == 0.2
        assert await cache.check()
    finally:
        await cache.close()
