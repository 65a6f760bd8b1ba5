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
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from anomaly_api.detection.following import Followed, advance
from anomaly_api.service.streams.base import (
    MAX_FEEDBACK_HISTORY,
    AlarmUpdateStatus,
    FeedbackStatus,
    FollowSpec,
    StoredAlarm,
    StoredEvent,
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
from anomaly_api.service.streams.events import parse_event_id
from anomaly_api.service.streams.listing import ListedStream, page_of
from anomaly_api.service.streams.recent import RecentRing, RecentScore

DEFAULT_MAX_WINDOW = 1024
DEFAULT_MAX_EVENTS = 100
DEFAULT_RECENT_SCORES = 500


@dataclass(slots=True)
class _Events:
    """One stream life's events: record and feedback (JSON) by id, oldest first."""

    records: OrderedDict[str, bytes] = field(default_factory=OrderedDict)
    labels: dict[str, str] = field(default_factory=dict)
    feedback: dict[str, list[bytes]] = field(default_factory=dict)

    def stored(self, eid: str) -> StoredEvent:
        entries = self.feedback.get(eid)
        return StoredEvent(self.records[eid], b"[" + b",".join(entries) + b"]" if entries else b"")

    def write(self, written: Sequence[tuple[str, bytes]], max_events: int) -> None:
        for eid, record in written:
            self.records[eid] = record
        while len(self.records) > max_events:
            eid, _ = self.records.popitem(last=False)
            self.labels.pop(eid, None)
            self.feedback.pop(eid, None)


@dataclass(slots=True)
class _Stream:
    records: NDArray[np.float64]  # (n, 1 + n_features), read-only, timestamp first
    model_key: str
    total: int
    first_timestamp: float
    expires_at: float
    alarm: StoredAlarm
    events: _Events
    recent: RecentRing
    followed: Followed | None = None


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
    max_events : int
        Events kept per stream (the oldest are dropped).
    recent_scores : int
        Recent scores kept per stream (``recent.py``; 0: none).
    clock : callable
        Monotonic seconds; tests pass a fake one.
    """

    def __init__(
        self,
        *,
        max_streams: int,
        idle_ttl_s: float,
        max_window: int = DEFAULT_MAX_WINDOW,
        max_events: int = DEFAULT_MAX_EVENTS,
        recent_scores: int = DEFAULT_RECENT_SCORES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_streams < 1 or idle_ttl_s <= 0 or max_window < 1 or max_events < 1:
            raise ValueError("max_streams, max_window and max_events must be >= 1, idle_ttl_s > 0")
        if recent_scores < 0:
            raise ValueError("recent_scores must be >= 0")
        self.max_events = max_events
        self.recent_scores = recent_scores
        self.max_streams = max_streams
        self.idle_ttl_s = idle_ttl_s
        self.max_window = max_window
        self._clock = clock
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._lock = threading.Lock()

    def sibling(self) -> InMemoryStreamStore:
        """An empty store with the same bounds (another model's streams)."""
        return InMemoryStreamStore(
            max_streams=self.max_streams,
            idle_ttl_s=self.idle_ttl_s,
            max_window=self.max_window,
            max_events=self.max_events,
            clock=self._clock,
        )

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
        defer: bool = False,
        follow: FollowSpec | None = None,
    ) -> StreamWindow:
        """Append readings to a stream (see ``StreamStore.append``; never deferred); all or
        nothing."""
        return self.append_now(
            stream_id, timestamps, rows, window=window, model_key=model_key, follow=follow
        )

    async def settle(self, window: StreamWindow) -> None:
        """Nothing to send: appends are never deferred (``StreamStore.settle``)."""

    def append_now(
        self,
        stream_id: str,
        timestamps: Sequence[float] | NDArray[np.float64],
        rows: ArrayLike,
        *,
        window: int,
        model_key: str,
        follow: FollowSpec | None = None,
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
                events = stream.events
                recent = stream.recent
                followed = stream.followed
            else:
                if new_stream and len(self._streams) >= self.max_streams:
                    raise StreamCapacityError(self.max_streams)
                joined = records[-window:].copy()
                total = records.shape[0]
                first = float(records[0, 0])
                alarm = StoredAlarm(epoch=new_epoch())  # a new life: a fresh alarm state
                events = _Events()
                recent = RecentRing(self.recent_scores)
                followed = None
            before = None
            if follow is not None:
                before = follow.start if followed is None else followed
                followed = advance(before, records[:, 1:].tolist(), follow.alpha)
            kept = joined
            kept.flags.writeable = False
            self._streams[stream_id] = _Stream(
                kept,
                model_key,
                total,
                first,
                now + self.idle_ttl_s,
                alarm,
                events,
                recent,
                followed,
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
            followed=before,
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
                followed=stream.followed,
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
        events: Sequence[tuple[str, bytes]] = (),
        expected_revision: int | None = None,
        window: StreamWindow | None = None,
    ) -> tuple[AlarmUpdateStatus, StoredAlarm | None]:
        """Compare-and-set of the alarm state (see ``StreamStore.update_alarm``; the append
        of ``window`` is done already)."""
        return self.update_alarm_now(
            stream_id,
            alarm,
            expected_seen=expected_seen,
            events=events,
            expected_revision=expected_revision,
        )

    def update_alarm_now(
        self,
        stream_id: str,
        alarm: StoredAlarm,
        *,
        expected_seen: int,
        events: Sequence[tuple[str, bytes]] = (),
        expected_revision: int | None = None,
    ) -> tuple[AlarmUpdateStatus, StoredAlarm | None]:
        """``update_alarm`` without the coroutine."""
        revision = alarm.revision if expected_revision is None else expected_revision
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
            if stream.alarm.revision != revision:
                return "behind", stream.alarm
            stream.alarm = alarm
            if events:
                stream.events.write(events, self.max_events)
            return "ok", None

    async def list_events(
        self, stream_id: str, *, limit: int, before: int | None = None
    ) -> list[StoredEvent] | None:
        """The stream's events (see ``StreamStore.list_events``)."""
        return self.list_events_now(stream_id, limit=limit, before=before)

    def list_events_now(
        self, stream_id: str, *, limit: int, before: int | None = None
    ) -> list[StoredEvent] | None:
        """``list_events`` without the coroutine."""
        check_stream_id(stream_id)
        with self._lock:
            self._expire(self._clock())
            stream = self._streams.get(stream_id)
            if stream is None:
                return None
            events = stream.events
            page: list[StoredEvent] = []
            for eid in reversed(events.records):
                if len(page) >= limit:
                    break
                parsed = parse_event_id(eid)
                if before is None or (parsed is not None and parsed[1] < before):
                    page.append(events.stored(eid))
            return page

    async def add_feedback(
        self, stream_id: str, event_id: str, label: str, entry: bytes
    ) -> tuple[FeedbackStatus, StoredEvent | None]:
        """Label an event (see ``StreamStore.add_feedback``)."""
        return self.add_feedback_now(stream_id, event_id, label, entry)

    def add_feedback_now(
        self, stream_id: str, event_id: str, label: str, entry: bytes
    ) -> tuple[FeedbackStatus, StoredEvent | None]:
        """``add_feedback`` without the coroutine."""
        check_stream_id(stream_id)
        with self._lock:
            self._expire(self._clock())
            stream = self._streams.get(stream_id)
            if stream is None or event_id not in stream.events.records:
                return "missing", None
            events = stream.events
            if events.labels.get(event_id) == label:
                return "same", events.stored(event_id)
            events.labels[event_id] = label
            history = events.feedback.setdefault(event_id, [])
            history.append(entry)
            del history[: max(0, len(history) - MAX_FEEDBACK_HISTORY)]
            return "ok", events.stored(event_id)

    @property
    def recent_size(self) -> int:
        """Recent scores kept per stream."""
        return self.recent_scores

    def record_recent(
        self,
        stream_id: str,
        entries: Sequence[RecentScore],
        *,
        restarted: bool,
        degraded: bool = False,
    ) -> None:
        """Record recent scores now (``StreamStore.record_recent``)."""
        self.add_recent_now(stream_id, entries)

    def add_recent_now(self, stream_id: str, entries: Sequence[RecentScore]) -> None:
        """``add_recent`` without the coroutine (a restart already made a new ring)."""
        with self._lock:
            stream = self._streams.get(stream_id)
            if stream is not None:
                stream.recent.add(entries)

    async def recent(self, stream_id: str, *, limit: int) -> list[RecentScore] | None:
        """The newest recent scores (see ``StreamStore.recent``)."""
        return self.recent_now(stream_id, limit=limit)

    def recent_now(self, stream_id: str, *, limit: int) -> list[RecentScore] | None:
        """``recent`` without the coroutine."""
        check_stream_id(stream_id)
        with self._lock:
            self._expire(self._clock())
            stream = self._streams.get(stream_id)
            return None if stream is None else stream.recent.newest(limit)

    async def list_streams(self, *, limit: int, after: str | None = None) -> list[ListedStream]:
        """Live streams by id (see ``StreamStore.list_streams``)."""
        return self.list_streams_now(limit=limit, after=after)

    def list_streams_now(self, *, limit: int, after: str | None = None) -> list[ListedStream]:
        """``list_streams`` without the coroutine."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            listed = [ListedStream(sid, s.expires_at - now) for sid, s in self._streams.items()]
        return page_of(listed, limit=limit, after=after)

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
