"""Redis store: replicas share streams, concurrent appends serialise, retries, state size."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis

from anomaly_api.config import Settings
from anomaly_api.service.streams import RedisStreamStore, StreamOrderError, StreamWindow
from anomaly_api.service.streams.redis_store import _APPEND_LUA, HEADER
from anomaly_api.testing import SHARED_REDIS_URL

F = 8


@pytest.fixture
async def replicas(shared_settings: Settings) -> AsyncIterator[tuple[RedisStreamStore, ...]]:
    """Two independent stores (own clients and pools) on one Redis: two replicas."""
    pair = (
        RedisStreamStore.from_settings(shared_settings),
        RedisStreamStore.from_settings(shared_settings),
    )
    yield pair
    for store in pair:
        await store.close()


def _row(step: int) -> np.ndarray:
    return np.full((1, F), step * 10.0) + np.arange(F)


def test_the_script_and_python_agree_on_the_header() -> None:
    """The Lua script reads the model key at byte 30 (1-based): after a 29-byte header."""
    assert HEADER.size == 29
    assert "string.sub(old, 30, 29 + mlen)" in _APPEND_LUA


async def test_replicas_see_the_same_stream(replicas: tuple[RedisStreamStore, ...]) -> None:
    one, two = replicas
    await one.append("shared", [1.0, 2.0], np.vstack([_row(1), _row(2)]), window=4, model_key="m")
    window = await two.append("shared", [3.0], _row(3), window=4, model_key="m")
    assert not window.new_stream
    assert window.timestamps.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(StreamOrderError):
        await one.append("shared", [3.0], _row(3), window=4, model_key="m")
    state = await one.get("shared")
    assert state is not None
    assert state.total == 3
    assert await two.delete("shared")
    assert await one.get("shared") is None


async def test_concurrent_appends_from_two_replicas_never_interleave(
    replicas: tuple[RedisStreamStore, ...],
) -> None:
    """Steps 0..399 sent at once, even ones by one replica and odd ones by the other.

    Whatever order Redis runs them in, each accepted reading followed all accepted ones
    before it, each refused one changed nothing, and every window returned is in order
    with each value still beside its own timestamp.
    """
    one, two = replicas
    steps = range(400)

    async def send(step: int) -> StreamWindow | StreamOrderError:
        store = one if step % 2 else two
        try:
            return await store.append("race", [float(step)], _row(step), window=500, model_key="m")
        except StreamOrderError as exc:
            return exc

    results = await asyncio.gather(*(send(step) for step in steps))
    assert one.fallbacks == two.fallbacks == 0  # 400 at once queue for connections, no fail-over
    windows = [r for r in results if isinstance(r, StreamWindow)]
    refused = [r for r in results if isinstance(r, StreamOrderError)]
    assert len(windows) + len(refused) == len(steps)
    assert windows  # at least the first one runs

    accepted = sorted(float(w.timestamps[-1]) for w in windows)
    final = await one.get("race")
    assert final is not None
    assert final.total == len(windows)
    for window in windows:
        ts = window.timestamps
        assert (np.diff(ts) > 0).all()
        np.testing.assert_array_equal(window.values, ts[:, None] * 10.0 + np.arange(F))
        assert ts.tolist() == accepted[: len(ts)]  # each window = the accepted prefix
    last = max(windows, key=len)
    assert last.timestamps.tolist() == accepted
    for error in refused:  # refused: not later than something already accepted
        assert error.timestamp <= error.previous
        assert error.timestamp not in accepted


async def test_a_resent_append_is_answered_not_duplicated(
    redis_store: RedisStreamStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py resends the script after a dropped connection; if the first send had run,
    the token stored with the window makes the second a no-op instead of an order error."""
    monkeypatch.setattr("anomaly_api.service.streams.redis_store.os.urandom", lambda n: b"T" * n)
    first = await redis_store.append("retry", [1.0], _row(1), window=5, model_key="m")
    again = await redis_store.append("retry", [1.0], _row(1), window=5, model_key="m")
    assert again.timestamps.tolist() == first.timestamps.tolist() == [1.0]
    assert again.total == 1
    monkeypatch.setattr("anomaly_api.service.streams.redis_store.os.urandom", lambda n: b"U" * n)
    with pytest.raises(StreamOrderError):  # a new call with the same reading is a duplicate
        await redis_store.append("retry", [1.0], _row(1), window=5, model_key="m")


async def test_keys_carry_the_prefix_and_the_idle_ttl(
    redis_store: RedisStreamStore, shared_settings: Settings
) -> None:
    await redis_store.append("ttl", [1.0], _row(1), window=5, model_key="m")
    with redis.Redis.from_url(SHARED_REDIS_URL) as client:
        key = redis_store.window_key("ttl")
        assert key.startswith(shared_settings.stream_prefix)
        assert 590_000 < client.pttl(key) <= 600_000
        score = client.zscore(redis_store.live_key, "ttl")
        assert score is not None
        redis_now_ms = client.time()[0] * 1000
        assert 590_000 < score - redis_now_ms <= 601_000


async def test_state_per_stream_8_channels_60_readings(redis_store: RedisStreamStore) -> None:
    """The value is the header, the model key and 60 records of 9 float64, nothing more."""
    model_key = "sensor-model-20261129"
    for step in range(200):
        await redis_store.append("size", [float(step)], _row(step), window=60, model_key=model_key)
    with redis.Redis.from_url(SHARED_REDIS_URL) as client:
        key = redis_store.window_key("size")
        payload = HEADER.size + len(model_key) + 60 * (1 + F) * 8
        assert client.strlen(key) == payload == 4_370
        usage = client.memory_usage(key, samples=0)
        assert usage is not None
        assert payload < usage < payload + 1_024  # key, dict entry, expiry, allocator slack
        print(f"\nMEMORY USAGE window key: {usage} B (payload {payload} B)")


async def test_an_error_reply_is_served_from_memory_without_an_outage(
    redis_store: RedisStreamStore,
) -> None:
    """WRONGTYPE inside the script (a list where the window belongs): Redis answered, so the
    call is served from memory and nothing is reported down."""
    with redis.Redis.from_url(SHARED_REDIS_URL) as client:
        client.rpush(redis_store.window_key("clash"), "not a window")
    window = await redis_store.append("clash", [1.0], _row(1), window=5, model_key="m")
    assert window.degraded
    assert window.timestamps.tolist() == [1.0]
    assert redis_store.errors == 1
    assert not redis_store.degraded
    assert await redis_store.check()
