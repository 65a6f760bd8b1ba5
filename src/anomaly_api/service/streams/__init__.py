"""Stateful sensor streams: each stream's trailing window of readings, in memory or Redis.

``build_stream_store(settings)`` picks Redis when ``settings.redis_url`` is set (every
replica sees the same streams; process memory while Redis is down), else process memory.
See ``docs/streams.md`` for limits, expiry and what fail-open loses.
"""

from __future__ import annotations

from anomaly_api.config import Settings
from anomaly_api.service.streams.base import (
    STREAM_ID_PATTERN,
    AlarmUpdateStatus,
    FeedbackStatus,
    FollowSpec,
    StoredAlarm,
    StoredEvent,
    StreamState,
    StreamStore,
    StreamWindow,
    StreamWindowMoved,
    check_stream_id,
)
from anomaly_api.service.streams.errors import (
    InvalidReadingsError,
    InvalidStreamIdError,
    StreamCapacityError,
    StreamOrderError,
)
from anomaly_api.service.streams.listing import ListedStream
from anomaly_api.service.streams.memory import InMemoryStreamStore
from anomaly_api.service.streams.recent import RecentScore
from anomaly_api.service.streams.redis_store import RedisStreamStore

__all__ = [
    "STREAM_ID_PATTERN",
    "AlarmUpdateStatus",
    "FeedbackStatus",
    "FollowSpec",
    "InMemoryStreamStore",
    "InvalidReadingsError",
    "InvalidStreamIdError",
    "ListedStream",
    "RecentScore",
    "RedisStreamStore",
    "StoredAlarm",
    "StoredEvent",
    "StreamCapacityError",
    "StreamOrderError",
    "StreamState",
    "StreamStore",
    "StreamWindow",
    "StreamWindowMoved",
    "build_stream_store",
    "check_stream_id",
    "model_stream_store",
]


def build_stream_store(settings: Settings) -> StreamStore:
    """Redis when ``settings.redis_url`` is set, else process memory. Never connects."""
    if settings.redis_url:
        return RedisStreamStore.from_settings(settings)
    return InMemoryStreamStore(
        max_streams=settings.stream_max_streams,
        idle_ttl_s=settings.stream_idle_ttl_s,
        max_window=settings.stream_max_window,
        max_events=settings.stream_max_events,
        recent_scores=settings.stream_recent_scores,
    )


def model_stream_store(store: StreamStore, name: str) -> StreamStore:
    """A store like ``store`` (same backend, bounds and Redis connections) holding only
    model ``name``'s streams: a stream id names a different stream under each model."""
    if isinstance(store, RedisStreamStore):
        return store.namespaced(name)
    if isinstance(store, InMemoryStreamStore):
        return store.sibling()
    raise TypeError(f"no per-model variant of {type(store).__name__}")
