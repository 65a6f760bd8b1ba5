"""A stream's alarm state in both stores: kept with the window, compare-and-set on the
reading count, reset with the stream; and ``StreamAlarms`` under racing appends."""

from __future__ import annotations

import asyncio
import hashlib
import random

import numpy as np
import pytest
import redis

from anomaly_api.config import Settings
from anomaly_api.monitoring.alarms import AlarmPolicy, AlarmState
from anomaly_api.service.stream_alarms import RETRY_DELAYS_S, StreamAlarms
from anomaly_api.service.streams import (
    InMemoryStreamStore,
    RedisStreamStore,
    StoredAlarm,
    StreamOrderError,
    StreamStore,
    StreamWindowMoved,
)

ROW = [[0.5, 1.0]]
POLICY = AlarmPolicy(k=2, window=3, cooldown=2)


async def _append(store: StreamStore, sid: str, t: float, key: str = "m1") -> StoredAlarm:
    window = await store.append(sid, [t], ROW, window=4, model_key=key)
    assert window.alarm is not None
    return window.alarm


def _after(alarm: StoredAlarm, seen: int, alarms: int = 0) -> StoredAlarm:
    return StoredAlarm(
        epoch=alarm.epoch,
        state=AlarmState(recent=(1.0,), seen=seen, alarms=alarms),
        unit="readings",
    )


async def test_a_new_stream_has_a_fresh_state_kept_across_appends(store: StreamStore) -> None:
    first = await _append(store, "s", 1.0)
    assert first.state == AlarmState()
    assert first.unit is None
    ok = await store.update_alarm("s", _after(first, 1, alarms=1), expected_seen=0)
    assert ok == ("ok", None)
    second = await _append(store, "s", 2.0)
    assert second.epoch == first.epoch
    assert second.state == AlarmState(recent=(1.0,), seen=1, alarms=1)
    state = await store.get("s")
    assert state is not None
    assert state.alarm == second
    assert await store.read_alarm("s") == second


async def test_update_is_a_compare_and_set_on_the_reading_count(store: StreamStore) -> None:
    alarm = await _append(store, "s", 1.0)
    await _append(store, "s", 2.0)
    # the second append's update (readings before it: 1) must wait for the first's
    status, current = await store.update_alarm("s", _after(alarm, 2), expected_seen=1)
    assert status == "behind"
    assert current is not None
    assert current.state.seen == 0
    assert (await store.update_alarm("s", _after(alarm, 1), expected_seen=0))[0] == "ok"
    # the same update again: the state is past it now
    assert (await store.update_alarm("s", _after(alarm, 1), expected_seen=0))[0] == "stale"
    assert (await store.update_alarm("s", _after(alarm, 2), expected_seen=1))[0] == "ok"
    stored = await store.read_alarm("s")
    assert stored is not None
    assert stored.state.seen == 2


@pytest.mark.parametrize("restart", ["delete", "model_key"])
async def test_a_restarted_stream_starts_a_fresh_state(store: StreamStore, restart: str) -> None:
    old = await _append(store, "s", 1.0)
    assert (await store.update_alarm("s", _after(old, 1, alarms=1), expected_seen=0))[0] == "ok"
    if restart == "delete":
        assert await store.delete("s")
        new = await _append(store, "s", 2.0)
    else:
        new = await _append(store, "s", 2.0, key="m2")
    assert new.state == AlarmState()
    assert new.epoch != old.epoch
    # an update computed for the old life of the stream is refused
    assert (await store.update_alarm("s", _after(old, 1), expected_seen=0))[0] == "stale"
    assert (await store.read_alarm("s")) == new


async def test_an_unknown_stream_has_no_state_and_takes_no_update(store: StreamStore) -> None:
    assert await store.read_alarm("nobody") is None
    update = StoredAlarm(epoch="x", state=AlarmState(seen=1))
    assert (await store.update_alarm("nobody", update, expected_seen=0))[0] == "stale"


async def test_redis_keeps_the_state_next_to_the_window_and_expires_with_it(
    redis_store: RedisStreamStore, shared_settings: Settings
) -> None:
    alarm = await _append(redis_store, "r", 1.0)
    assert (await redis_store.update_alarm("r", _after(alarm, 1), expected_seen=0))[0] == "ok"
    with redis.Redis.from_url(str(shared_settings.redis_url)) as client:
        raw = client.get(redis_store.alarm_key("r"))
        assert isinstance(raw, bytes)
        assert StoredAlarm.from_json(raw) == _after(alarm, 1)
        window_ttl = client.pttl(redis_store.window_key("r"))
        alarm_ttl = client.pttl(redis_store.alarm_key("r"))
        # The CAS script sets the alarm key's PX from the window's PTTL: Redis's clock may tick
        # a millisecond between the two inside the script, so the alarm may outlive it by 1 ms.
        assert 0 < alarm_ttl <= window_ttl + 2
        # a window kept without an alarm state (from before alarms existed) gets a fresh one
        # that counts the readings already there
        client.delete(redis_store.alarm_key("r"))
        fresh = await _append(redis_store, "r", 2.0)
        assert fresh.state == AlarmState(seen=1)
        assert fresh.epoch != alarm.epoch
        assert await redis_store.delete("r")
        assert client.exists(redis_store.alarm_key("r")) == 0


def _flag(t: float) -> bool:
    """Whether the reading at ``t`` is anomalous: fixed, pseudo-random, about 60%."""
    return hashlib.sha256(str(t).encode()).digest()[0] < 154


async def _race(
    stores: list[StreamStore], sid: str, rounds: int, width: int, seed: int, defer: bool = False
) -> tuple[set[float], list[float]]:
    """``rounds`` times ``width`` concurrent appends of one reading each, spread over
    ``stores`` (replicas), each scored after a random pause; the alarmed timestamps and
    the accepted ones. ``defer``: appends sent with the alarm update when a store can
    (scored again when the window moved, as ``StreamPlane`` does)."""
    rng = random.Random(seed)
    planes = [StreamAlarms(store) for store in stores]
    alarmed: set[float] = set()
    accepted: list[float] = []

    async def one(i: int) -> None:
        store, plane = stores[i % len(stores)], planes[i % len(planes)]
        t = float(i + 1)
        try:
            window = await store.append(sid, [t], ROW, window=4, model_key="m1", defer=defer)
            await asyncio.sleep(rng.uniform(0, 2 * RETRY_DELAYS_S[0]))  # "scoring"
            try:
                alarms, _ = await plane.evaluate(window, 1, np.array([_flag(t)]), POLICY)
            except StreamWindowMoved as moved:
                alarms, _ = await plane.evaluate(moved.window, 1, np.array([_flag(t)]), POLICY)
        except StreamOrderError:  # an older timestamp arriving after a newer one
            return
        accepted.append(t)
        if alarms[0]:
            alarmed.add(t)

    for r in range(rounds):
        await asyncio.gather(*(one(r * width + i) for i in range(width)))
    assert sum(p.not_stored for p in planes) == 0
    return alarmed, sorted(accepted)


@pytest.mark.parametrize(
    ("backend", "replicas", "width", "defer"),
    [
        ("memory", 1, 2, False),
        ("memory", 1, 8, False),
        ("redis", 1, 2, False),
        ("redis", 2, 2, False),
        ("redis", 2, 8, False),
        ("redis", 1, 1, True),
        ("redis", 1, 2, True),
        ("redis", 2, 2, True),
        ("redis", 2, 8, True),
    ],
)
async def test_racing_appends_give_the_alarms_of_sequential_ones(
    shared_settings: Settings, backend: str, replicas: int, width: int, defer: bool
) -> None:
    """Appends to one stream at once, in process memory or on one Redis through one or two
    store instances (replicas), sent alone or with the alarm update: the same alarms, and
    final state, as one after the other."""
    stores: list[StreamStore] = [
        RedisStreamStore.from_settings(shared_settings)
        if backend == "redis"
        else InMemoryStreamStore(max_streams=10, idle_ttl_s=600.0)
        for _ in range(replicas)
    ]
    try:
        alarmed, accepted = await _race(stores, "race", 200 // width, width, width, defer)
        state = await stores[0].get("race")
        joined = sum(s.joined for s in stores if isinstance(s, RedisStreamStore))
    finally:
        for store in stores:
            await store.close()
    # the sequential answer: the policy over the accepted readings in timestamp order
    flags = np.array([_flag(t) for t in accepted])
    expected, final = POLICY.evaluate(AlarmState(), flags)
    assert state is not None
    assert state.alarm is not None
    assert state.total == len(accepted) > 1
    assert alarmed == {t for t, a in zip(accepted, expected.tolist(), strict=True) if a}
    assert alarmed, "the race raised no alarm at all: the test would check nothing"
    assert state.alarm.state == final
    if defer and replicas == 1:  # appends went with their alarm update, in one call
        assert joined == len(accepted) - 1 if width == 1 else joined > 0


async def test_a_request_lagging_past_the_retries_fails_open() -> None:
    """An earlier request scoring for longer than the retries wait: the later one counts its
    readings as normal and is stored; the late one answers its own alarms, not stored."""
    store = InMemoryStreamStore(max_streams=10, idle_ttl_s=60.0)
    waited: list[float] = []

    async def no_wait(seconds: float) -> None:
        waited.append(seconds)

    plane = StreamAlarms(store, sleep=no_wait)
    policy = AlarmPolicy(k=2, window=5, cooldown=0)
    first = await store.append("s", [1.0], ROW, window=4, model_key="m")
    second = await store.append("s", [2.0], ROW, window=4, model_key="m")
    alarms_2, stored_2 = await plane.evaluate(second, 1, np.array([True]), policy)
    assert waited == list(RETRY_DELAYS_S)
    assert not alarms_2[0]  # the first reading counted as normal: one anomaly of k=2
    assert stored_2.state.seen == 2
    assert plane.not_stored == 0
    alarms_1, _ = await plane.evaluate(first, 1, np.array([True]), policy)
    assert not alarms_1[0]
    assert plane.not_stored == 1
    assert await store.read_alarm("s") == stored_2
