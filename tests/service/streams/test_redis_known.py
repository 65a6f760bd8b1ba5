"""An append sent with its alarm update (``redis_known.py``): the window a replica predicts
is the one the append script writes, and a deferred append is never lost."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from anomaly_api.config import Settings
from anomaly_api.monitoring.alarms import AlarmPolicy
from anomaly_api.service.stream_alarms import StreamAlarms
from anomaly_api.service.streams import RedisStreamStore, StreamWindowMoved
from anomaly_api.service.streams.redis_known import HEADER, KnownStreams, predict

KEY = "m1"
POLICY = AlarmPolicy(k=2, window=3, cooldown=2)


def _records(t0: float, n: int, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(int(t0))
    values = rng.normal(size=(n, channels))
    return np.column_stack([t0 + np.arange(n, dtype=np.float64), values])


@pytest.mark.parametrize("per_append", [1, 3])
async def test_the_predicted_value_is_the_one_the_script_writes(
    redis_store: RedisStreamStore, shared_settings: Settings, per_append: int
) -> None:
    """Appends growing the window past its length, then trimmed: each new stored value is
    ``predict`` of the one before, byte for byte (the token is the append's own)."""
    client = redis.Redis.from_url(str(shared_settings.redis_url))
    key = redis_store.window_key("s")
    t = 1.0
    first = _records(t, per_append)
    await redis_store.append("s", first[:, 0], first[:, 1:], window=5, model_key=KEY)
    for _ in range(6):
        t += per_append
        records = _records(t, per_append)
        before = client.get(key)
        assert before is not None
        await redis_store.append("s", records[:, 0], records[:, 1:], window=5, model_key=KEY)
        after = client.get(key)
        assert after is not None
        token = HEADER.unpack_from(after)[4]
        assert predict(before, KEY.encode(), records, 5, token) == after
    client.close()


async def test_no_prediction_where_the_script_would_answer_otherwise(
    redis_store: RedisStreamStore, shared_settings: Settings
) -> None:
    """Another model key, another feature count, a reading not after the stored ones:
    ``predict`` declines, the script answers them."""
    records = _records(10.0, 2)
    await redis_store.append("s", records[:, 0], records[:, 1:], window=4, model_key=KEY)
    client = redis.Redis.from_url(str(shared_settings.redis_url))
    value = client.get(redis_store.window_key("s"))
    client.close()
    assert value is not None
    later = _records(20.0, 1)
    assert predict(value, KEY.encode(), later, 4, b"t" * 8) is not None
    assert predict(value, b"m2", later, 4, b"t" * 8) is None
    assert predict(value, KEY.encode(), _records(20.0, 1, channels=3), 4, b"t" * 8) is None
    assert predict(value, KEY.encode(), _records(11.0, 1), 4, b"t" * 8) is None


async def test_a_known_stream_appends_with_its_alarm_update_in_one_call(
    redis_store: RedisStreamStore, shared_settings: Settings
) -> None:
    """After this replica wrote a stream's window and alarm state, its next deferred
    append is sent with the alarm update; another replica's append in between moves the
    window, and the readings are scored again from the stored window."""
    alarms = StreamAlarms(redis_store)
    t = 1.0
    window = await redis_store.append("s", [t], [[0.1, 0.2]], window=4, model_key=KEY, defer=True)
    await alarms.evaluate(window, 1, np.array([True]), POLICY)
    for _ in range(3):
        t += 1
        window = await redis_store.append(
            "s", [t], [[0.1, 0.2]], window=4, model_key=KEY, defer=True
        )
        await alarms.evaluate(window, 1, np.array([True]), POLICY)
    assert redis_store.joined == 3
    other = RedisStreamStore.from_settings(shared_settings)
    try:
        t += 1
        await other.append("s", [t], [[0.3, 0.4]], window=4, model_key=KEY)
    finally:
        await other.close()
    t += 1
    window = await redis_store.append("s", [t], [[0.5, 0.6]], window=4, model_key=KEY, defer=True)
    assert window.timestamps[-2] == t - 2  # scored from what this replica wrote last
    with pytest.raises(StreamWindowMoved) as moved:
        await alarms.evaluate(window, 1, np.array([True]), POLICY)
    assert moved.value.window.timestamps.tolist()[-2:] == [t - 1, t]
    assert moved.value.window.total == 6
    _, stored = await alarms.evaluate(moved.value.window, 1, np.array([True]), POLICY)
    assert stored.state.seen == 6
    assert redis_store.joined == 3


async def test_a_deferred_append_not_followed_by_an_update_is_settled(
    redis_store: RedisStreamStore,
) -> None:
    """``settle`` sends a deferred append alone (its scoring failed): the readings are in
    the window, as they would be without ``defer``."""
    alarms = StreamAlarms(redis_store)
    window = await redis_store.append("s", [1.0], [[0.1, 0.2]], window=4, model_key=KEY)
    await alarms.evaluate(window, 1, np.array([False]), POLICY)
    window = await redis_store.append("s", [2.0], [[0.1, 0.2]], window=4, model_key=KEY, defer=True)
    state = await redis_store.get("s")
    assert state is not None
    assert state.total == 1  # not sent yet
    await redis_store.settle(window)
    await redis_store.settle(window)  # once only
    state = await redis_store.get("s")
    assert state is not None
    assert state.total == 2
    assert state.last_timestamp == 2.0


def test_a_stores_model_namespaces_share_its_bound(redis_store: RedisStreamStore) -> None:
    named = redis_store.namespaced("pump-model")
    assert named._known is redis_store._known
    assert named.window_key("s") != redis_store.window_key("s")  # kept apart by key


def test_known_streams_are_bounded_and_a_moved_stream_is_skipped() -> None:
    known = KnownStreams(max_streams=2, skip=2)
    known.remember("a", b"va", b"aa")
    known.remember("b", b"vb", b"ab")
    known.remember("c", b"vc", b"ac")
    assert known.get("a") is None  # the least recently written went first
    assert known.get("c") == (b"vc", b"ac", b"")
    known.forget("c", moved=True)
    known.remember("c", b"v1", b"a1")
    known.remember("c", b"v2", b"a2")
    assert known.get("c") is None  # the two writes after the move are not kept
    known.remember("c", b"v3", b"a3", b"f3")
    assert known.get("c") == (b"v3", b"a3", b"f3")
