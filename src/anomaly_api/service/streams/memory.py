"""In-process stream store: the default, and the Redis store's fallback while Redis is down.

Streams live in an ``OrderedDict`` ordered by last append, so the ones idle longest --
the first to expire, as every stream has the same idle TTL -- sit at the front and
expiry is a pop from the front. The number of live streams is bounded: a new stream
beyond the bound gets ``StreamCapacityError``; live streams are never evicted to make
room (that would silently lose a window). Each window is one read-only float64 array of
records that an append replaces rather than mutates, so windows already handed out never
change. A lock guards every update, so worker threads may share the store with the
event loop; no method awaits while holding it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from anomaly_api.service.streams.base import (
    AlarmUpdateStatus,
    StoredAlarm,
    StreamState,
    StreamWindow,
    check_model_key,
    check_stream_id,
    check_window,
    new_epoch,
    split_records,
    to_records,
)
from anomaly_api.service.streams.errors import (
    InvalidReadingsError,
    StreamCapacityError,
    StreamOrderError,
)

DEFAULT_MAX_WINDOW = 1024


@dataclass(slots=True)
class _Stream:
    records: NDArray[np.float64]  # (n, 1 + n_features), read-only, timestamp first
    model_key: str
    total: int
    first_timestamp: float
    expires_at: float
    alarm: StoredAlarm


class InMemoryStreamStore:
    """At most ``max_streams`` live streams, each expiring ``idle_ttl_s`` after its last append.

    Parameters
    ----------
    max_streams : int
        Bound on live streams (expired ones do not count).
    idle_ttl_s : float
        Idle time after which a stream is forgotten; every append restarts it.
    max_window : int
        Largest ``window`` an append may ask for (bounds memory per stream).
    clock : callable
        Monotonic seconds; tests pass a fake one.
    """

    def __init__(
        self,
        *,
        max_streams: int,
        idle_ttl_s: float,
        max_window: int = DEFAULT_MAX_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_streams < 1 or idle_ttl_s <= 0 or max_window < 1:
            raise ValueError("max_streams and max_window must be >= 1, idle_ttl_s > 0")
        self.max_streams = max_streams
        self.idle_ttl_s = idle_ttl_s
        self.max_window = max_window
        self._clock = clock
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        """Always ``"memory"``."""
        return "memory"

    @property
    def degraded(self) -> bool:
        """Always False: the process's own memory cannot be unreachable."""
        return False

    async def append(
        self,
        stream_id: str,
        timestamps: Sequence[float] | NDArray[np.float64],
        rows: ArrayLike,
        *,
        window: int,
        model_key: str,
    ) -> StreamWindow:
        """Append readings to a stream (see ``StreamStore.append``); all or nothing."""
        return self.append_now(stream_id, timestamps, rows, window=window, model_key=model_key)

    def append_now(
        self,
        stream_id: str,
        timestamps: Sequence[float] | NDArray[np.float64],
        rows: ArrayLike,
        *,
        window: int,
        model_key: str,
    ) -> StreamWindow:
        """``append`` without the coroutine, for callers outside an event loop."""
        check_stream_id(stream_id)
        check_model_key(model_key)
        check_window(window, self.max_window)
        records = to_records(stream_id, timestamps, rows)
        with self._lock:
            now = self._clock()
            self._expire(now)
            stream = self._streams.get(stream_id)
            new_stream = stream is None
            model_changed = stream is not None and stream.model_key != model_key
            if stream is not None and not model_changed:
                held = stream.records
                if held.shape[1] != records.shape[1]:
                    raise InvalidReadingsError(
                        f"stream {stream_id!r} holds readings of {held.shape[1] - 1} features "
                        f"under model key {model_key!r}, got {records.shape[1] - 1}"
                    )
                last = float(held[-1, 0])
                if records[0, 0] <= last:
                    raise StreamOrderError(
                        stream_id=stream_id,
                        timestamp=float(records[0, 0]),
                        previous=last,
                        index=0,
                    )
                keep_held = max(0, min(held.shape[0], window - records.shape[0]))
                # One new, owned array of at most `window` records: nothing grows behind it.
                joined = np.concatenate((held[held.shape[0] - keep_held :], records[-window:]))
                total = stream.total + records.shape[0]
                first = stream.first_timestamp
                alarm = stream.alarm
            else:
                if new_stream and len(self._streams) >= self.max_streams:
                    raise StreamCapacityError(self.max_streams)
                joined = records[-window:].copy()
                total = records.shape[0]
                first = float(records[0, 0])
                alarm = StoredAlarm(epoch=new_epoch())  # a new life: a fresh alarm state
            kept = joined
            kept.flags.writeable = False
            self._streams[stream_id] = _Stream(
                kept, model_key, total, first, now + self.idle_ttl_s, alarm
            )
            self._streams.move_to_end(stream_id)
        ts, values = split_records(kept)
        return StreamWindow(
            stream_id=stream_id,
            timestamps=ts,
            values=values,
            total=total,
            model_key=model_key,
            new_stream=new_stream,
            model_changed=model_changed,
            alarm=alarm,
        )

    async def get(self, stream_id: str) -> StreamState | None:
        """State of a live stream; reading it does not refresh its expiry."""
        return self.get_now(stream_id)

    def get_now(self, stream_id: str) -> StreamState | None:
        """``get`` without the coroutine."""
        check_stream_id(stream_id)
        with self._lock:
            now = self._clock()
            self._expire(now)
            stream = self._streams.get(stream_id)
            if stream is None:
                return None
            return StreamState(
                stream_id=stream_id,
                total=stream.total,
                first_timestamp=stream.first_timestamp,
                last_timestamp=float(stream.records[-1, 0]),
                window_length=int(stream.records.shape[0]),
                n_features=int(stream.records.shape[1] - 1),
                model_key=stream.model_key,
                expires_in_s=stream.expires_at - now,
                alarm=stream.alarm,
            )

    async def read_alarm(self, stream_id: str, *, degraded: bool = False) -> StoredAlarm | None:
        """The stream's alarm state (None when the stream is not live)."""
        return self.read_alarm_now(stream_id)

    def read_alarm_now(self, stream_id: str) -> StoredAlarm | None:
        """``read_alarm`` without the coroutine."""
        with self._lock:
            self._expire(self._clock())
            stream = self._streams.get(stream_id)
            return None if stream is None else stream.alarm

    async def update_alarm(
        self,
        stream_id: str,
        alarm: StoredAlarm,
        *,
        expected_seen: int,
        degraded: bool = False,
    ) -> tuple[AlarmUpdateStatus, StoredAlarm | None]:
        """Compare-and-set of the alarm state (see ``StreamStore.update_alarm``)."""
        return self.update_alarm_now(stream_id, alarm, expected_seen=expected_seen)

    def update_alarm_now(
        self, stream_id: str, alarm: StoredAlarm, *, expected_seen: int
    ) -> tuple[AlarmUpdateStatus, StoredAlarm | None]:
        """``update_alarm`` without the coroutine."""
        with self._lock:
            self._expire(self._clock())
            stream = self._streams.get(stream_id)
            if stream is None or stream.alarm.epoch != alarm.epoch:
                return "stale", None
            seen = stream.alarm.state.seen
            if seen < expected_seen:
                return "behind", stream.alarm
            if seen > expected_seen:
                return "stale", None
            stream.alarm = alarm
            return "ok", None

    async def delete(self, stream_id: str) -> bool:
        """Forget a stream; True when it was live."""
        return self.delete_now(stream_id)

    def delete_now(self, stream_id: str) -> bool:
        """``delete`` without the coroutine."""
        check_stream_id(stream_id)
        with self._lock:
            self._expire(self._clock())
            return self._streams.pop(stream_id, None) is not None

    async def live_count(self) -> int:
        """Live streams (expired ones are dropped first)."""
        return len(self)

    def __len__(self) -> int:
        """Live streams (expired ones are dropped first)."""
        with self._lock:
            self._expire(self._clock())
            return len(self._streams)

    def clear(self) -> None:
        """Forget every stream."""
        with self._lock:
            self._streams.clear()

    async def check(self) -> bool:
        """Always True."""
        return True

    async def close(self) -> None:
        """Forget every stream."""
        self.clear()

    def _expire(self, now: float) -> None:
        """Drop expired streams: they are at the front (same TTL, ordered by last append)."""
        streams = self._streams
        while streams:
            oldest = next(iter(streams.values()))
            if oldest.expires_at > now:
                return
            streams.popitem(last=False)
