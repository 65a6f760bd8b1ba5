"""A stream's followed level and spread (``FollowSpec``): moved with each append in the
same step as the window, the same bits in process memory and in Redis (its append script,
the one-round-trip path, several replicas), reset with the stream."""

from __future__ import annotations

import numpy as np
import pytest
from stream_clock import FakeClock

from anomaly_api.config import Settings
from anomaly_api.detection.following import Followed, advance
from anomaly_api.monitoring.alarms import AlarmPolicy
from anomaly_api.service.stream_alarms import StreamAlarms
from anomaly_api.service.streams import (
    FollowSpec,
    InMemoryStreamStore,
    RedisStreamStore,
    StreamStore,
    StreamWindowMoved,
)

KEY = "m-follow"
POLICY = AlarmPolicy(k=2, window=3, cooldown=2)
SPEC = FollowSpec(alpha=2.0 / 11.0, start=Followed((1.5, -20.0, 0.1), (0.8, 3.0, 1e-3)))
BATCHES = (1, 1, 3, 1, 7, 2, 1, 1, 5)


def _readings(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 3)) * np.array([1.0, 30.0, 1e-3]) + np.array([2.0, 0.0, 0.1])
    values[n // 2 :, 0] += 7.0  # a new level the state follows
    return np.arange(1.0, n + 1.0), values


async def _append_all(store: StreamStore, *, defer: bool) -> list[Followed | None]:
    """``BATCHES`` appended in turn (deferred: with their alarm update, as the service
    does); the followed state each window was handed, before its readings."""
    ts, X = _readings(sum(BATCHES))
    alarms = StreamAlarms(store)
    handed = []
    at = 0
    for n in BATCHES:
        part = slice(at, at + n)
        window = await store.append(
            "s", ts[part], X[part], window=6, model_key=KEY, defer=defer, follow=SPEC
        )
        if defer:
            try:
                await alarms.evaluate(window, n, np.zeros(n, dtype=bool), POLICY)
            except StreamWindowMoved as moved:
                window = moved.window
                await alarms.evaluate(window, n, np.zeros(n, dtype=bool), POLICY)
        handed.append(window.followed)
        at += n
    return handed


def _reference() -> tuple[list[Followed], Followed]:
    """The plain ``advance`` over the readings before each batch, and after them all."""
    _, X = _readings(sum(BATCHES))
    states, state, at = [], SPEC.start, 0
    for n in BATCHES:
        states.append(state)
        state = advance(state, X[at : at + n].tolist(), SPEC.alpha)
        at += n
    return states, state


@pytest.mark.parametrize("defer", [False, True])
async def test_both_stores_follow_a_stream_bit_for_bit(
    redis_store: RedisStreamStore, clock: FakeClock, defer: bool
) -> None:
    memory = InMemoryStreamStore(max_streams=10, idle_ttl_s=600.0, clock=clock)
    in_memory = await _append_all(memory, defer=defer)
    in_redis = await _append_all(redis_store, defer=defer)
    states, last = _reference()
    assert in_memory == in_redis == states  # float tuples: equal means the same bits
    if defer:
        assert redis_store.joined == len(BATCHES) - 1  # the one-round-trip path ran
    for store in (memory, redis_store):
        state = await store.get("s")
        assert state is not None
        assert state.followed == last


async def test_appends_of_two_replicas_interleaved_follow_as_one(
    redis_store: RedisStreamStore, shared_settings: Settings, clock: FakeClock
) -> None:
    """Two stores on one Redis (two replicas) taking turns, deferred as the service
    defers: the state is the one a single store reaches."""
    other = RedisStreamStore.from_settings(shared_settings)
    ts, X = _readings(sum(BATCHES))
    replicas = (redis_store, other)
    handed = []
    try:
        at = 0
        for i, n in enumerate(BATCHES):
            store = replicas[i % 2 if i < 4 else (i // 2) % 2]
            part = slice(at, at + n)
            window = await store.append(
                "s", ts[part], X[part], window=6, model_key=KEY, defer=True, follow=SPEC
            )
            try:
                await StreamAlarms(store).evaluate(window, n, np.zeros(n, dtype=bool), POLICY)
            except StreamWindowMoved as moved:
                window = moved.window
                await StreamAlarms(store).evaluate(window, n, np.zeros(n, dtype=bool), POLICY)
            handed.append(window.followed)
            at += n
        state = await other.get("s")
    finally:
        await other.close()
    states, last = _reference()
    assert handed == states
    assert state is not None
    assert state.followed == last


async def test_an_append_without_follow_leaves_the_state_and_delete_resets_it(
    store: StreamStore,
) -> None:
    ts, X = _readings(12)
    first = await store.append("s", ts[:4], X[:4], window=6, model_key=KEY, follow=SPEC)
    assert first.followed == SPEC.start  # a new stream starts from the training state
    moved = advance(SPEC.start, X[:4].tolist(), SPEC.alpha)
    left = await store.append("s", ts[4:6], X[4:6], window=6, model_key=KEY)
    assert left.followed is None
    found = await store.get("s")
    assert found is not None
    assert found.followed == moved
    again = await store.append("s", ts[6:7], X[6:7], window=6, model_key=KEY, follow=SPEC)
    assert again.followed == moved
    assert await store.delete("s")
    fresh = await store.append("s", ts[8:9], X[8:9], window=6, model_key=KEY, follow=SPEC)
    assert fresh.followed == SPEC.start
    assert fresh.new_stream
    # another model key restarts the stream and its state
    other = await store.append("s", ts[9:10], X[9:10], window=6, model_key="m2", follow=SPEC)
    assert other.model_changed
    assert other.followed == SPEC.start
    other_state = await store.get("s")
    assert other_state is not None
    assert other_state.followed == advance(SPEC.start, X[9:10].tolist(), SPEC.alpha)


async def test_a_stream_that_never_followed_reports_no_state(store: StreamStore) -> None:
    ts, X = _readings(3)
    await store.append("s", ts, X, window=6, model_key=KEY)
    found = await store.get("s")
    assert found is not None
    assert found.followed is None
