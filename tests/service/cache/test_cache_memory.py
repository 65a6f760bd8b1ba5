"""The in-process cache: hits, misses, TTL expiry and LRU eviction; the disabled one."""

from __future__ import annotations

import pytest

from anomaly_api.config import Settings
from anomaly_api.service.cache import (
    CacheCounters,
    DisabledPredictionCache,
    InMemoryPredictionCache,
    PredictionCache,
    build_cache,
)


class FakeClock:
    """A settable monotonic clock, so expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_miss_then_hit_and_counters() -> None:
    cache = InMemoryPredictionCache(max_entries=10, ttl_s=60)
    assert await cache.get_many(["a", "b"]) == [None, None]
    await cache.set_many({"a": b"1"})
    assert await cache.get_many(["a", "b", "a"]) == [b"1", None, b"1"]
    assert (cache.hits, cache.misses, cache.errors) == (2, 3, 0)


async def test_entries_expire_after_ttl() -> None:
    clock = FakeClock()
    cache = InMemoryPredictionCache(max_entries=10, ttl_s=5, timer=clock)
    await cache.set_many({"a": b"1"})
    clock.now = 4.9
    assert await cache.get_many(["a"]) == [b"1"]
    clock.now = 5.1
    assert await cache.get_many(["a"]) == [None]
    assert len(cache) == 0


async def test_least_recently_used_entry_is_evicted() -> None:
    cache = InMemoryPredictionCache(max_entries=2, ttl_s=60)
    await cache.set_many({"a": b"1", "b": b"2"})
    assert await cache.get_many(["a"]) == [b"1"]  # "b" is now least recently used
    await cache.set_many({"c": b"3"})
    assert await cache.get_many(["a", "b", "c"]) == [b"1", None, b"3"]
    assert len(cache) == 2


async def test_close_drops_entries() -> None:
    cache = InMemoryPredictionCache(max_entries=2, ttl_s=60)
    await cache.set_many({"a": b"1"})
    await cache.close()
    assert await cache.get_many(["a"]) == [None]


@pytest.mark.parametrize("redis_url", [None, "redis://127.0.0.1:6379/0"])
async def test_build_cache_is_in_memory_by_default_with_or_without_redis(
    redis_url: str | None,
) -> None:
    cache = build_cache(Settings(redis_url=redis_url, cache_max_entries=3))
    assert isinstance(cache, InMemoryPredictionCache)
    assert isinstance(cache, PredictionCache)
    assert isinstance(cache, CacheCounters)
    assert cache.backend == "memory"
    assert cache.breaker_state == "closed"
    assert await cache.check()
    assert cache.breaker_state == "closed"


async def test_writing_a_key_again_renews_its_expiry_and_recency() -> None:
    clock = FakeClock()
    cache = InMemoryPredictionCache(max_entries=2, ttl_s=5, timer=clock)
    await cache.set_many({"a": b"1", "b": b"2"})
    clock.now = 3.0
    await cache.set_many({"a": b"3"})  # "b" is now the least recently used, and oldest
    clock.now = 5.0  # "b" was written 5 s ago: expired; "a" 2 s ago
    assert await cache.get_many(["a", "b"]) == [b"3", None]
    assert len(cache) == 1
    await cache.set_many({"c": b"4", "d": b"5"})  # full: "a", the least recently used, goes
    assert await cache.get_many(["a", "c", "d"]) == [None, b"4", b"5"]
    clock.now = 7.9
    assert len(cache) == 2
    clock.now = 10.0
    assert len(cache) == 0


async def test_off_stores_nothing_and_counts_misses() -> None:
    cache = build_cache(Settings(redis_url="redis://127.0.0.1:6379/0", prediction_cache="off"))
    assert isinstance(cache, DisabledPredictionCache)
    assert isinstance(cache, PredictionCache)
    assert isinstance(cache, CacheCounters)
    await cache.set_many({"a": b"1", "b": b"2"})
    assert await cache.get_many(["a", "b", "c"]) == [None, None, None]
    assert (cache.hits, cache.misses, cache.errors, cache.skipped) == (0, 3, 0, 0)
    assert (cache.backend, cache.breaker_state, await cache.check()) == ("off", "closed", True)
