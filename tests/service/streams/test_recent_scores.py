"""Each stream's ring of recent scores in both stores: time order, the bound, a restart and a
delete emptying it, Redis's batched writes (several streams in one call, read-your-writes on
the replica, nothing written for a deleted stream), and the listing of live streams."""

from __future__ import annotations

import pytest
import redis

from anomaly_api.config import Settings
from anomaly_api.service.streams import RecentScore, RedisStreamStore, StreamStore
from anomaly_api.service.streams.recent import PendingScores, RecentRing, decode_entries
from anomaly_api.testing import RedisServer

KEY = "model@0/w1/f0"


def scores(*timestamps: float, flagged: tuple[float, ...] = ()) -> list[RecentScore]:
    return [RecentScore(t, t / 10, 0.0, t in flagged) for t in timestamps]


async def append(store: StreamStore, sid: str, *timestamps: float, key: str = KEY) -> bool:
    """Append readings and record their scores as the stream plane does; True: restarted."""
    window = await store.append(sid, list(timestamps), [[t] for t in timestamps], window=4,
                                model_key=key)  # fmt: skip
    store.record_recent(sid, scores(*timestamps), restarted=window.restarted)
    return window.restarted


async def test_scores_come_back_in_time_order_and_bounded(store: StreamStore) -> None:
    await append(store, "s", 1.0, 2.0)
    await append(store, "s", 3.0)
    assert await store.recent("s", limit=10) == scores(1.0, 2.0, 3.0)
    assert await store.recent("s", limit=2) == scores(2.0, 3.0)
    assert await store.recent("nobody", limit=10) is None


async def test_the_ring_keeps_the_newest(shared_settings: Settings) -> None:
    small = shared_settings.model_copy(update={"stream_recent_scores": 3})
    store = RedisStreamStore.from_settings(small)
    try:
        for t in range(1, 6):
            await append(store, "s", float(t))
        assert await store.recent("s", limit=10) == scores(3.0, 4.0, 5.0)
    finally:
        await store.close()


async def test_a_restart_empties_the_ring(store: StreamStore) -> None:
    assert await append(store, "s", 10.0, 11.0)
    assert await append(store, "s", 1.0, key="another@1/w1/f0")  # new model key: a new life
    assert await store.recent("s", limit=10) == scores(1.0)


async def test_delete_empties_the_ring(store: StreamStore) -> None:
    await append(store, "s", 10.0, 11.0)
    assert await store.delete("s")
    assert await store.recent("s", limit=10) is None
    await append(store, "s", 1.0)
    assert await store.recent("s", limit=10) == scores(1.0)


async def test_streams_are_listed_by_id(store: StreamStore) -> None:
    for sid in ("b", "a", "c"):
        await append(store, sid, 1.0)
    page = await store.list_streams(limit=2)
    assert [s.stream_id for s in page] == ["a", "b"]
    assert [s.stream_id for s in await store.list_streams(limit=2, after="b")] == ["c"]
    assert all(0 < s.expires_in_s <= 600 for s in page)


async def test_redis_writes_every_streams_scores_in_one_call(
    shared_settings: Settings, redis_server: RedisServer
) -> None:
    """On a Redis of its own: its command counts are this test's alone."""
    own = shared_settings.model_copy(update={"redis_url": redis_server.url})
    store = RedisStreamStore.from_settings(own)
    try:
        for sid in ("a", "b"):
            await store.append(sid, [1.0, 2.0], [[1.0], [2.0]], window=4, model_key=KEY)
        store.record_recent("b", scores(0.5), restarted=False)
        await store.flush_recent()  # the script is loaded: each write is one call from here
        store.record_recent("a", scores(1.0, 2.0, flagged=(2.0,)), restarted=True)
        store.record_recent("b", scores(1.0), restarted=True)
        store.record_recent("gone", scores(1.0), restarted=True)  # no window: nothing written
        with redis_server.client() as client:
            assert not client.exists(store.recent_key("a"))  # queued, not written yet
            calls = store_calls(client)
            await store.flush_recent()
            assert store_calls(client) == calls + 1
            stored = client.zrange(store.recent_key("a"), 0, -1)
            assert decode_entries(stored) == scores(1.0, 2.0, flagged=(2.0,))
            assert client.pttl(store.recent_key("a")) > 0
            assert client.zcard(store.recent_key("b")) == 1
            assert not client.exists(store.recent_key("gone"))
    finally:
        await store.close()


async def test_redis_queued_scores_of_a_deleted_stream_are_dropped(
    shared_settings: Settings,
) -> None:
    store = RedisStreamStore.from_settings(shared_settings)
    try:
        await store.append("s", [10.0], [[1.0]], window=4, model_key=KEY)
        store.record_recent("s", scores(10.0), restarted=True)
        assert await store.delete("s")
        await store.append("s", [1.0], [[1.0]], window=4, model_key=KEY)  # a new life at once
        await store.flush_recent()
        assert await store.recent("s", limit=10) == []
    finally:
        await store.close()


def store_calls(client: redis.Redis) -> int:
    """Script calls the shared Redis has run (``EVALSHA`` and ``EVAL``)."""
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


def test_pending_scores_keep_the_newest_and_a_restart_drops_the_rest() -> None:
    pending = PendingScores(3)
    pending.add("s", scores(1.0, 2.0), restarted=False)
    pending.add("s", scores(3.0, 4.0), restarted=False)
    pending.add("t", scores(1.0), restarted=False)
    pending.add("t", scores(9.0), restarted=True)
    pending.add("u", scores(1.0), restarted=False)
    pending.forget("u")
    assert pending.take() == [("s", False, scores(2.0, 3.0, 4.0)), ("t", True, scores(9.0))]
    assert not pending


@pytest.mark.parametrize("size", [0, 2])
def test_the_memory_ring(size: int) -> None:
    ring = RecentRing(size)
    ring.add(scores(1.0, 2.0, 3.0))
    assert ring.newest(10) == scores(1.0, 2.0, 3.0)[3 - size :]
    assert ring.newest(1) == (scores(3.0) if size else [])
