"""Idle expiry and the live-stream bound, in memory (fake clock) and in Redis (short TTL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from stream_clock import FakeClock

from anomaly_api.config import Settings
from anomaly_api.service.streams import (
    InMemoryStreamStore,
    RedisStreamStore,
    StreamCapacityError,
    StreamStore,
)

ONE = np.ones((1, 4))


async def _fill(store: StreamStore, n: int) -> None:
    for i in range(n):
        await store.append(f"s{i}", [1.0], ONE, window=3, model_key="m")


# --- memory -----------------------------------------------------------------------------


@pytest.fixture
def memory(clock: FakeClock) -> InMemoryStreamStore:
    return InMemoryStreamStore(max_streams=3, idle_ttl_s=60.0, clock=clock)


async def test_memory_bound_refuses_new_streams_not_live_ones(memory: InMemoryStreamStore) -> None:
    await _fill(memory, 3)
    with pytest.raises(StreamCapacityError) as caught:
        await memory.append("s3", [1.0], ONE, window=3, model_key="m")
    assert caught.value.max_streams == 3
    assert await memory.get("s3") is None
    # Existing streams keep working, and none was evicted.
    window = await memory.append("s0", [2.0], ONE, window=3, model_key="m")
    assert window.total == 2
    assert len(memory) == 3
    assert await memory.delete("s1")
    await memory.append("s3", [1.0], ONE, window=3, model_key="m")
    assert len(memory) == 3


async def test_memory_streams_expire_after_the_idle_time(
    memory: InMemoryStreamStore, clock: FakeClock
) -> None:
    await _fill(memory, 3)
    clock.now += 30
    await memory.append("s0", [2.0], ONE, window=3, model_key="m")  # refreshes s0 only
    state = await memory.get("s0")
    assert state is not None
    assert state.expires_in_s == 60
    clock.now += 30  # s1, s2 idle for 60 s: expired; s0 for 30 s
    assert await memory.get("s1") is None
    assert len(memory) == 1
    await memory.get("s0")  # reading does not refresh
    clock.now += 30
    assert await memory.get("s0") is None
    # Expired streams free their slots and restart from nothing: s0 held 2.0, so 1.0
    # is accepted only because the stream restarted.
    await _fill(memory, 3)
    state = await memory.get("s0")
    assert state is not None
    assert (state.total, state.last_timestamp) == (1, 1.0)


async def test_memory_state_is_bounded_by_the_window(memory: InMemoryStreamStore) -> None:
    for step in range(500):
        await memory.append("s", [float(step)], np.ones((1, 8)), window=60, model_key="m")
    held = memory._streams["s"].records
    assert held.shape == (60, 9)
    assert held.nbytes == 60 * 9 * 8  # no growing buffer behind the window
    assert held.base is None


def test_memory_store_is_safe_across_threads(memory: InMemoryStreamStore) -> None:
    """Two threads appending interleaved timestamps: accepted ones are in order, none lost."""
    import threading

    store = InMemoryStreamStore(max_streams=10, idle_ttl_s=60.0)
    accepted: list[float] = []
    lock = threading.Lock()

    def worker(parity: int) -> None:
        for step in range(parity, 2000, 2):
            try:
                store.append_now("s", [float(step)], ONE, window=1000, model_key="m")
            except Exception:
                continue
            with lock:
                accepted.append(float(step))

    threads = [threading.Thread(target=worker, args=(p,)) for p in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    window = store._streams["s"].records
    assert sorted(accepted)[-1000:] == window[:, 0].tolist()
    assert store.get_now("s") is not None
    assert store.get_now("s").total == len(accepted)  # type: ignore[union-attr]


# --- Redis ------------------------------------------------------------------------------


@pytest.fixture
async def small_redis(shared_settings: Settings) -> AsyncIterator[RedisStreamStore]:
    settings = shared_settings.model_copy(
        update={"stream_max_streams": 3, "stream_idle_ttl_s": 1.0}
    )
    store = RedisStreamStore.from_settings(settings)
    yield store
    await store.close()


async def test_redis_bound_refuses_new_streams_not_live_ones(
    small_redis: RedisStreamStore,
) -> None:
    await _fill(small_redis, 3)
    with pytest.raises(StreamCapacityError):
        await small_redis.append("s3", [1.0], ONE, window=3, model_key="m")
    assert await small_redis.get("s3") is None
    assert (await small_redis.append("s0", [2.0], ONE, window=3, model_key="m")).total == 2
    assert await small_redis.live_count() == 3
    assert await small_redis.delete("s1")
    assert await small_redis.live_count() == 2
    await small_redis.append("s3", [1.0], ONE, window=3, model_key="m")
    assert not small_redis.degraded  # refused for capacity is not an outage


async def test_redis_streams_expire_and_free_their_slots(small_redis: RedisStreamStore) -> None:
    await _fill(small_redis, 3)
    state = await small_redis.get("s0")
    assert state is not None
    assert 0 < state.expires_in_s <= 1.0
    await asyncio.sleep(1.3)  # past the 1 s idle TTL
    assert await small_redis.get("s0") is None
    assert await small_redis.live_count() == 0
    await _fill(small_redis, 3)  # the slots are free again
    window = await small_redis.append("s0", [2.0], ONE, window=3, model_key="m")
    assert window.total == 2
    assert await small_redis.live_count() == 3


async def test_redis_bound_holds_across_replicas(shared_settings: Settings) -> None:
    settings = shared_settings.model_copy(update={"stream_max_streams": 5})
    one, two = RedisStreamStore.from_settings(settings), RedisStreamStore.from_settings(settings)
    try:
        results = await asyncio.gather(
            *(
                (one if i % 2 else two).append(f"r{i}", [1.0], ONE, window=3, model_key="m")
                for i in range(12)
            ),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, StreamCapacityError)]
        assert len(refused) == 7
        assert len(results) - len(refused) == 5
        assert await one.live_count() == 5
    finally:
        await one.close()
        await two.close()
