"""The Redis cache against a real server: hits, TTL, version isolation, one round trip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import redis

from anomaly_api.config import Settings
from anomaly_api.service.cache import (
    CacheCounters,
    PredictionCache,
    RedisPredictionCache,
    build_cache,
    prediction_keys,
)
from anomaly_api.testing import RedisServer, free_port

ROW = np.array([0.1, 0.0, -2.0, 3.5, 1.0, 1.0, 0.25, -0.5])


def _key(prefix: str, version: str, row: Any) -> str:
    """The cache key of one row."""
    return prediction_keys(prefix, version, np.reshape(np.asarray(row, dtype=np.float64), (1, -1)))[
        0
    ]


async def test_miss_then_hit_and_counters(
    shared_settings: Settings, shared_cache: RedisPredictionCache
) -> None:
    stored, absent = prediction_keys(shared_settings.cache_prefix, "v1", np.stack([ROW, ROW + 1]))
    assert await shared_cache.get_many([stored, absent]) == [None, None]
    await shared_cache.set_many({stored: b"\x00payload\xff"})
    got = await shared_cache.get_many([stored, absent, stored])
    assert got == [b"\x00payload\xff", None, b"\x00payload\xff"]
    assert (shared_cache.hits, shared_cache.misses, shared_cache.errors) == (2, 3, 0)
    assert shared_cache.breaker_state == "closed"
    assert shared_cache.breaker_state == "closed"


async def test_empty_calls_do_nothing(shared_cache: RedisPredictionCache) -> None:
    assert await shared_cache.get_many([]) == []
    await shared_cache.set_many({})
    assert (shared_cache.hits, shared_cache.misses, shared_cache.errors) == (0, 0, 0)


async def test_other_model_version_never_sees_the_answer(
    shared_settings: Settings, shared_cache: RedisPredictionCache
) -> None:
    prefix = shared_settings.cache_prefix
    await shared_cache.set_many({_key(prefix, "v1", ROW): b"old model"})
    assert await shared_cache.get_many([_key(prefix, "v2", ROW)]) == [None]
    assert await shared_cache.get_many([_key(prefix, "v1", ROW)]) == [b"old model"]


async def test_negative_zero_reading_hits_the_zero_entry(
    shared_settings: Settings, shared_cache: RedisPredictionCache
) -> None:
    prefix = shared_settings.cache_prefix
    await shared_cache.set_many({_key(prefix, "v1", ROW): b"zero"})
    negative = ROW.copy()
    negative[1] = -0.0
    assert await shared_cache.get_many([_key(prefix, "v1", negative)]) == [b"zero"]


async def test_entries_expire_after_ttl(shared_settings: Settings) -> None:
    cache = RedisPredictionCache.from_settings(
        shared_settings.model_copy(update={"cache_ttl_s": 0.3})
    )
    key = _key(shared_settings.cache_prefix, "v1", ROW)
    try:
        await cache.set_many({key: b"short-lived"})
        with redis.Redis.from_url(shared_settings.redis_url or "") as client:
            assert 0 < client.pttl(key) <= 300
        deadline = time.monotonic() + 10
        while await cache.get_many([key]) != [None]:
            assert time.monotonic() < deadline, "entry never expired"
            await asyncio.sleep(0.05)
    finally:
        await cache.close()


async def test_build_cache_of_the_redis_cache_does_not_connect() -> None:
    """Start-up must not wait for Redis: building against a closed port succeeds at once."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    cache = build_cache(Settings(redis_url=url, prediction_cache="redis"))
    try:
        assert isinstance(cache, RedisPredictionCache)
        assert isinstance(cache, PredictionCache)
        assert isinstance(cache, CacheCounters)
        assert cache.backend == "redis"
        assert cache.breaker_state == "closed"  # nothing has failed yet
        assert await cache.get_many(["k"]) == [None]  # refused: fail open
        assert cache.errors == 1
    finally:
        await cache.close()


def _stats(client: redis.Redis) -> dict[str, int]:
    """Calls per command, and read events the server processed (one INFO read included)."""
    info = client.info("all")
    calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in info.items() if "cmdstat_" in k}
    return calls | {"reads": info["total_reads_processed"]}


@pytest.fixture
async def private_cache(redis_server: RedisServer) -> AsyncIterator[RedisPredictionCache]:
    """A Redis cache on the throwaway server (its stats and config are ours to change)."""
    settings = Settings(redis_url=redis_server.url, redis_timeout_s=2.0, cache_prefix="rt:")
    cache = RedisPredictionCache.from_settings(settings)
    yield cache
    await cache.close()


async def test_batch_read_and_write_take_one_round_trip_each(
    private_cache: RedisPredictionCache, redis_server: RedisServer
) -> None:
    """100 keys: one MGET (no GETs); the 100 SETs go as one script call, not 100 requests."""
    keys = prediction_keys("rt:", "v1", np.random.default_rng(0).normal(size=(100, 8)))
    await private_cache.set_many({"rt:warm-up": b"-"})  # connect, handshake, load the script
    with redis_server.client() as stats:
        stats.config_resetstat()
        before = _stats(stats)
        await private_cache.set_many({key: b"x" * 200 for key in keys})
        after_set = _stats(stats)
        assert await private_cache.get_many(keys) == [b"x" * 200] * 100
        after_get = _stats(stats)
    assert after_set["evalsha"] == 1
    assert after_set["set"] == 100  # run by the script, inside Redis
    # Reads between two INFO calls, minus the later INFO's own read.
    assert after_set["reads"] - before["reads"] - 1 <= 3  # one request (a few socket reads)
    assert after_get["mget"] == 1
    assert "get" not in after_get
    assert after_get["reads"] - after_set["reads"] - 1 == 1


async def test_writes_survive_a_flushed_script_cache(
    private_cache: RedisPredictionCache, redis_server: RedisServer
) -> None:
    """A restarted Redis has forgotten the write script; it is loaded again on the fly."""
    await private_cache.set_many({"rt:a": b"1"})
    with redis_server.client() as admin:
        admin.script_flush()
    await private_cache.set_many({"rt:b": b"2"})
    assert await private_cache.get_many(["rt:a", "rt:b"]) == [b"1", b"2"]
    assert private_cache.errors == 0


async def test_error_reply_is_counted_but_is_no_outage(
    private_cache: RedisPredictionCache, redis_server: RedisServer
) -> None:
    """Out of memory refuses writes; reads still work and the breaker stays closed."""
    await private_cache.set_many({"rt:a": b"1"})
    with redis_server.client() as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        for _ in range(5):
            await private_cache.set_many({"rt:b": b"2"})
        admin.config_set("maxmemory", 0)
    assert private_cache.errors == 5
    assert private_cache.breaker_state == "closed"
    assert private_cache.breaker_state == "closed"
    assert await private_cache.get_many(["rt:a", "rt:b"]) == [b"1", None]
