"""Fail-open against a throwaway Redis that is killed, frozen and restarted mid-run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from itertools import count

import numpy as np
import pytest

from anomaly_api.config import Settings
from anomaly_api.service.streams import (
    RecentScore,
    RedisStreamStore,
    StreamCapacityError,
    StreamOrderError,
    StreamWindow,
)
from anomaly_api.testing import RedisServer

ROW = np.arange(4.0).reshape(1, 4)


def _settings(server: RedisServer, **update: object) -> Settings:
    """Opens after 2 failures, tries again after 0.5 s (long next to a refused connect)."""
    return Settings(
        redis_url=server.url,
        redis_timeout_s=0.2,
        redis_breaker_failures=2,
        redis_breaker_cooldown_s=0.5,
        stream_prefix="fault:",
        **update,  # type: ignore[arg-type]
    )


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStreamStore]:
    built = RedisStreamStore.from_settings(_settings(redis_server))
    yield built
    await built.close()


async def _append(store: RedisStreamStore, ts: float) -> StreamWindow:
    return await store.append("s", [ts], ROW + ts, window=100, model_key="m")


async def _until_served_by_redis(
    store: RedisStreamStore, clock: count[int], timeout_s: float = 15.0
) -> StreamWindow:
    """Keep appending, as requests would, until an append is served by Redis again."""
    deadline = time.monotonic() + timeout_s
    while True:
        window = await _append(store, float(next(clock)))
        if not window.degraded:
            return window
        assert time.monotonic() < deadline, f"Redis not used again ({store.breaker_state})"
        await asyncio.sleep(0.1)


async def test_killed_redis_fails_open_to_memory_and_comes_back(
    store: RedisStreamStore, redis_server: RedisServer
) -> None:
    clock = count(0)
    for _ in range(5):
        assert not (await _append(store, float(next(clock)))).degraded
    assert await store.check()

    redis_server.kill()
    windows = [await _append(store, float(next(clock))) for _ in range(10)]
    assert all(w.degraded for w in windows)
    assert windows[0].new_stream  # the window restarts in this process's memory
    assert windows[-1].timestamps.tolist() == [float(t) for t in range(5, 15)]
    assert store.degraded
    assert store.breaker_state == "open"
    assert store.skipped > 0  # past the threshold, calls skip Redis without waiting
    assert not await store.check()
    state = await store.get("s")
    assert state is not None
    assert state.degraded
    assert state.total == 10
    # Client errors are still client errors while degraded.
    with pytest.raises(StreamOrderError):
        await _append(store, 3.0)

    redis_server.start()  # same port, empty (nothing persisted)
    back = await _until_served_by_redis(store, clock)
    assert not store.degraded
    assert back.new_stream  # the restarted Redis had lost the window: a new one starts
    assert len(store._fallback) == 0  # memory windows are dropped once Redis answers
    other = RedisStreamStore.from_settings(_settings(redis_server))
    try:  # a second replica sees the window written after the recovery
        seen = await other.get("s")
        assert seen is not None
        assert seen.last_timestamp == float(back.timestamps[-1])
    finally:
        await other.close()


async def test_frozen_redis_times_out_and_its_window_is_used_again(
    store: RedisStreamStore, redis_server: RedisServer
) -> None:
    """Redis keeps its data (SIGSTOP): after the outage its window resumes, with a gap."""
    clock = count(0)
    for _ in range(5):
        await _append(store, float(next(clock)))
    redis_server.freeze()
    outage = [await _append(store, float(next(clock))) for _ in range(3)]
    assert all(w.degraded for w in outage)
    assert store.degraded

    redis_server.thaw()
    back = await _until_served_by_redis(store, clock)
    kept = back.timestamps.tolist()
    assert kept[:5] == [0.0, 1.0, 2.0, 3.0, 4.0]  # Redis's window before the outage
    # 5 and 6 timed out (the breaker opened on the second): their scripts were sent and
    # a thawed Redis may still run them. 7 was served from memory alone: lost.
    assert store.skipped >= 1
    assert 7.0 not in kept
    assert kept == sorted(kept)
    assert len(kept) == len(set(kept))


async def test_streams_running_when_redis_dies_raise_nothing(
    store: RedisStreamStore, redis_server: RedisServer
) -> None:
    """Eight sensors, each sending its next reading once the last is answered; Redis dies."""

    async def sensor(stream: int) -> list[StreamWindow]:
        windows = []
        for step in range(60):
            windows.append(
                await store.append(
                    f"s{stream}", [float(step)], ROW + step, window=100, model_key="m"
                )
            )
            await asyncio.sleep(0.01)
        return windows

    async def kill_soon() -> None:
        await asyncio.sleep(0.2)
        redis_server.kill()

    killer = asyncio.create_task(kill_soon())
    results = await asyncio.gather(*(sensor(stream) for stream in range(8)))
    await killer
    served = [window for windows in results for window in windows]
    assert len(served) == 8 * 60  # no exception escaped
    assert any(w.degraded for w in served)
    assert any(not w.degraded for w in served)
    for windows in results:
        assert windows[-1].degraded
        assert (np.diff(windows[-1].timestamps) > 0).all()
        assert windows[-1].timestamps[-1] == 59.0
    assert store.degraded


async def test_the_bound_holds_in_memory_too(redis_server: RedisServer) -> None:
    store = RedisStreamStore.from_settings(_settings(redis_server, stream_max_streams=2))
    try:
        redis_server.kill()
        await store.append("a", [1.0], ROW, window=5, model_key="m")
        await store.append("b", [1.0], ROW, window=5, model_key="m")
        with pytest.raises(StreamCapacityError):
            await store.append("c", [1.0], ROW, window=5, model_key="m")
        assert await store.live_count() == 2
        assert store.degraded
    finally:
        await store.close()


async def test_alarm_state_fails_open_to_memory_and_back(
    store: RedisStreamStore, redis_server: RedisServer
) -> None:
    """Alarms keep working while Redis is down (state in memory, with the memory window);
    Redis restarted empty starts the stream anew, and an append whose alarm step never ran
    costs the next one a short wait, then counts as normal."""
    from anomaly_api.monitoring.alarms import AlarmPolicy
    from anomaly_api.service.stream_alarms import StreamAlarms

    policy = AlarmPolicy(k=2, window=5, cooldown=0)
    alarms = StreamAlarms(store)
    anomaly = np.array([True])
    clock = count(1)

    async def one() -> tuple[bool, StreamWindow]:
        window = await _append(store, float(next(clock)))
        raised, _ = await alarms.evaluate(window, 1, anomaly, policy)
        return bool(raised[0]), window

    assert [(await one())[0] for _ in range(3)] == [False, True, True]
    redis_server.kill()
    during = [await one() for _ in range(3)]
    assert all(window.degraded for _, window in during)
    assert [raised for raised, _ in during] == [False, True, True]  # a fresh state in memory
    redis_server.start()  # empty: no persistence
    recovered = await _until_served_by_redis(store, clock)  # its alarm step never runs
    assert recovered.new_stream
    after = [await one() for _ in range(2)]
    assert not any(window.degraded for _, window in after)
    assert [raised for raised, _ in after] == [False, True]  # the skipped one: normal
    stored = await store.read_alarm("s")
    assert stored is not None
    assert (stored.state.seen, stored.state.alarms) == (recovered.total + 2, 1)
    assert alarms.not_stored == 0


async def test_events_fail_open_to_memory_and_come_back(
    store: RedisStreamStore, redis_server: RedisServer
) -> None:
    """An event kept in Redis is out of sight while Redis is frozen (the stream's memory
    copy has none, feedback for it is a 404's "missing", nothing raises), and listed and
    labelled again once Redis answers."""
    from anomaly_api.monitoring.alarms import AlarmPolicy
    from anomaly_api.service.stream_alarms import StreamAlarms
    from anomaly_api.service.streams.events import EventInput

    policy = AlarmPolicy(k=1, window=1, cooldown=0)
    alarms = StreamAlarms(store)
    inputs = EventInput(
        severities=np.array([0.9]),
        shares=np.full((1, 4), 0.25),
        values=ROW,
        channels=("a", "b", "c", "d"),
        low=np.full(4, -1.0),
        high=np.full(4, 1.0),
    )
    window = await _append(store, 1.0)
    _, _, ids = await alarms.evaluate_events(window, 1, np.array([True]), policy, lambda: inputs)
    (eid,) = ids
    assert eid is not None
    listed = await store.list_events("s", limit=10)
    assert listed is not None
    assert len(listed) == 1
    redis_server.freeze()
    try:
        during = await _append(store, 2.0)
        assert during.degraded
        assert await store.list_events("s", limit=10) == []  # the memory copy: no events
        assert (await store.add_feedback("s", eid, "confirmed", b"{}"))[0] == "missing"
    finally:
        redis_server.thaw()
    await _until_served_by_redis(store, count(3))
    status, event = await store.add_feedback("s", eid, "confirmed", b'{"label":"confirmed"}')
    assert status == "ok"
    assert event is not None
    assert event.record == listed[0].record


async def test_recent_scores_and_listing_fail_open_while_redis_is_down(
    store: RedisStreamStore, redis_server: RedisServer
) -> None:
    """With Redis killed: a queued write is lost without an error, the ring and the list of
    streams are process memory's (the degraded appends'), nothing raises."""
    window = await _append(store, 0.0)
    store.record_recent("s", [RecentScore(0.0, 1.0, 0.0, True)], restarted=window.restarted)
    redis_server.kill()
    await store.flush_recent()  # fails: the score is lost, not raised
    degraded = await _append(store, 1.0)
    assert degraded.degraded
    store.record_recent("s", [RecentScore(1.0, 2.0, 0.0, True)], restarted=True, degraded=True)
    assert await store.recent("s", limit=10) == [RecentScore(1.0, 2.0, 0.0, True)]
    assert [s.stream_id for s in await store.list_streams(limit=10)] == ["s"]
