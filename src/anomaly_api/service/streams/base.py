"""The stream-store contract shared by both backends, its input checks and its encoding.

A stream is identified by an id (``STREAM_ID_PATTERN``) and holds the trailing window of
raw readings -- timestamps (epoch seconds) and float64 feature values -- under a model
key. Readings are kept exactly as sent: one record of ``1 + n_features`` little-endian
float64 numbers per reading (timestamp first), never rounded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import orjson
from numpy.typing import ArrayLike, NDArray

from anomaly_api.detection.following import Followed
from anomaly_api.monitoring.adaptation import AdaptiveState
from anomaly_api.monitoring.alarms import AlarmState
from anomaly_api.service.streams.errors import (
    InvalidReadingsError,
    InvalidStreamIdError,
    StreamOrderError,
)
from anomaly_api.service.streams.events import EventTrack, event_id, parse_event_id
from anomaly_api.service.streams.listing import ListedStream
from anomaly_api.service.streams.recent import RecentScore

STREAM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
"""A letter or digit, then up to 127 letters, digits, ``.``, ``_``, ``:`` or ``-``."""

MAX_MODEL_KEY_BYTES = 255
RECORD_DTYPE = np.dtype("<f8")

_STREAM_ID = re.compile(STREAM_ID_PATTERN)


def new_epoch() -> str:
    """A random id for one life of a stream (it changes whenever the stream restarts)."""
    return os.urandom(8).hex()


@dataclass(frozen=True, slots=True)
class StoredAlarm:
    """A stream's alarm state as the store keeps it, next to the window.

    Attributes
    ----------
    epoch : str
        Changes whenever the stream (re)starts: an update written for an older life of
        the stream is refused (``update_alarm``).
    state : AlarmState
        ``state.seen`` counts the stream's readings evaluated so far: the update of an
        append of readings ``[before, total)`` applies when ``state.seen == before``.
    unit : str or None
        Unit of the positions in ``state`` (``readings`` or ``seconds``); None while none.
    last_alarm_reading : int or None
        Number (0 = the stream's first reading) of the reading of the last alarm.
    last_alarm_time : float or None
        Timestamp (epoch seconds) of that reading.
    events : EventTrack or None
        The stream's event state (``events.py``); None until it had an anomaly.
    adaptive : AdaptiveState or None
        The stream's adaptive threshold state (``monitoring/adaptation.py``); None until
        an append adapted.
    revision : int
        Changes written outside appends (feedback widening the adaptive state): an append
        scored from another revision is re-evaluated (``update_alarm``), so it cannot
        overwrite them.
    """

    epoch: str
    state: AlarmState = field(default_factory=AlarmState)
    unit: str | None = None
    last_alarm_reading: int | None = None
    last_alarm_time: float | None = None
    events: EventTrack | None = None
    adaptive: AdaptiveState | None = None
    revision: int = 0

    def to_json(self) -> bytes:
        """The stored form (JSON)."""
        data: dict[str, Any] = {
            "epoch": self.epoch,
            "state": self.state.to_dict(),
            "unit": self.unit,
            "last_alarm_reading": self.last_alarm_reading,
            "last_alarm_time": self.last_alarm_time,
        }
        if self.events is not None:
            data["events"] = self.events.to_dict()
        if self.adaptive is not None:
            data["adaptive"] = self.adaptive.to_dict()
        if self.revision:
            data["revision"] = self.revision
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> StoredAlarm:
        """Read ``to_json``'s output; ``ValueError`` when malformed."""
        try:
            data: dict[str, Any] = orjson.loads(raw)
            reading, time_ = data.get("last_alarm_reading"), data.get("last_alarm_time")
            events, adaptive = data.get("events"), data.get("adaptive")
            return cls(
                epoch=str(data["epoch"]),
                state=AlarmState.from_dict(data["state"]),
                unit=data.get("unit"),
                last_alarm_reading=None if reading is None else int(reading),
                last_alarm_time=None if time_ is None else float(time_),
                events=None if events is None else EventTrack.from_dict(events),
                adaptive=None if adaptive is None else AdaptiveState.from_dict(adaptive),
                revision=int(data.get("revision", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed stored alarm state: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as the store keeps it: its record and its feedback, both JSON."""

    record: bytes
    """The event (``EventRecord`` JSON, ``events.py``)."""
    feedback: bytes = b""
    """Its feedback entries, oldest first: a JSON array (empty bytes: none yet)."""


FeedbackStatus = Literal["ok", "same", "missing"]
"""``add_feedback``'s outcome: stored; the event's current label is already this one
(nothing changed); no such event."""

MAX_FEEDBACK_HISTORY = 20
"""Feedback entries kept per event (the oldest are dropped)."""


def events_to_drop(written: Sequence[tuple[str, bytes]], max_events: int) -> list[str]:
    """Ids of the events that fall off the per-stream bound when ``written`` are stored."""
    drop: list[str] = []
    for eid, _ in written:
        parsed = parse_event_id(eid)
        if parsed is not None and parsed[1] - max_events >= 1:
            drop.append(event_id(parsed[0], parsed[1] - max_events))
    return drop


AlarmUpdateStatus = Literal["ok", "behind", "stale", "failed"]
"""``update_alarm``'s outcome: written; the stored state has not reached the expected
reading count yet (an earlier request's readings are not evaluated yet; the current state
comes back); the stream restarted or a later update was written (give up); the backend
did not answer."""


@dataclass(frozen=True, slots=True)
class FollowSpec:
    """How an append moves the stream's followed level and spread (a time-aware model's
    ``follow`` feature, ``detection/following.py``): ``start`` is the state of a stream
    that has none yet (a new life), ``alpha`` each reading's weight. Both stores apply
    ``following.advance``'s operations, so they keep the same bits."""

    alpha: float
    start: Followed


@dataclass(frozen=True, slots=True)
class StreamWindow:
    """A stream's window right after an append (arrays are read-only).

    Attributes
    ----------
    stream_id : str
    timestamps : ndarray of shape (n_readings,)
        Epoch seconds, strictly increasing; ``n_readings <= window``.
    values : ndarray of shape (n_readings, n_features)
        The readings, float64, exactly as appended.
    total : int
        Readings the stream has accepted since it started (or restarted), the window's
        trimmed ones included.
    model_key : str
    new_stream : bool
        This append started the stream (it did not exist, had expired or was deleted).
    model_changed : bool
        The stream existed under another model key: its old window was dropped and
        this append started a new one (``total`` restarted too).
    degraded : bool
        Served from process memory because Redis is unreachable (Redis store only).
    """

    stream_id: str
    timestamps: NDArray[np.float64]
    values: NDArray[np.float64]
    total: int
    model_key: str
    new_stream: bool
    model_changed: bool
    degraded: bool = False
    alarm: StoredAlarm | None = None
    """The stream's alarm state as stored right after this append (None: not kept)."""
    receipt: object = None
    """The store's own record of this append, for ``update_alarm`` (the Redis store's: the
    stored value, and the append itself while it waits to be sent with the update)."""
    followed: Followed | None = None
    """The followed state before this append's readings (None: the append did not follow)."""

    @property
    def restarted(self) -> bool:
        """The window restarted with this append (new stream or new model key)."""
        return self.new_stream or self.model_changed

    def __len__(self) -> int:
        """Readings in the window."""
        return int(self.timestamps.shape[0])


class StreamWindowMoved(Exception):  # noqa: N818 - a signal to score again, not a failure
    """``update_alarm`` sent the append with the alarm state and found the stream's window
    not the one it was scored from (another request appended, the stream restarted, or the
    store did not answer): the readings are appended and ``window`` is the stream's window
    after them, to be scored and evaluated again."""

    def __init__(self, window: StreamWindow) -> None:
        super().__init__(window.stream_id)
        self.window = window


@dataclass(frozen=True, slots=True)
class StreamState:
    """What ``get`` reports about a live stream.

    Attributes
    ----------
    total : int
        Readings accepted since the stream started (or restarted).
    first_timestamp, last_timestamp : float
        First reading ever accepted (since the start) and the latest one.
    window_length : int
        Readings held now (at most the window of the last append).
    n_features : int
    model_key : str
    expires_in_s : float
        Idle time left before the stream expires (each append resets it).
    degraded : bool
        Answered from process memory because Redis is unreachable.
    """

    stream_id: str
    total: int
    first_timestamp: float
    last_timestamp: float
    window_length: int
    n_features: int
    model_key: str
    expires_in_s: float
    degraded: bool = False
    alarm: StoredAlarm | None = None
    followed: Followed | None = None
    """The followed state after the latest reading (None: the stream follows none)."""


@runtime_checkable
class StreamStore(Protocol):
    """Trailing windows of readings per stream. Raises only the errors of ``errors.py``."""

    @property
    def backend(self) -> str:
        """``"memory"`` or ``"redis"``."""
        ...

    @property
    def degraded(self) -> bool:
        """True while streams are served from process memory instead of Redis."""
        ...

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
        """Check order, append, trim to the last ``window`` readings, refresh the expiry and
        return the window -- all or nothing. ``defer``: the caller follows with
        ``update_alarm(window=...)`` (or ``settle``), and the store may send the append
        with it. ``follow``: move the stream's followed state over the readings, in the
        same step (the window's ``followed`` is the state before them); None leaves the
        state as it is (a restarted stream has none)."""
        ...

    async def settle(self, window: StreamWindow) -> None:
        """Send ``window``'s append if it was deferred and is not sent yet (the caller
        will not update the alarm state after it)."""
        ...

    async def get(self, stream_id: str) -> StreamState | None:
        """State of a live stream, ``None`` when it does not exist (or expired)."""
        ...

    async def read_alarm(self, stream_id: str, *, degraded: bool = False) -> StoredAlarm | None:
        """The stream's stored alarm state (``degraded``: the one in process memory)."""
        ...

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
        """Compare-and-set: store ``alarm`` when the stored state has ``alarm.epoch``,
        ``state.seen == expected_seen`` and ``revision == expected_revision`` (None:
        ``alarm.revision``; another revision answers ``behind``); never refreshes the
        expiry. ``degraded``: the append was served from process memory, so is the update.
        ``events``: ``(id, JSON)`` of event records written with it, atomically (the oldest
        beyond the per-stream bound are dropped). ``window``: the append's (a store that
        has not sent the append yet sends it now, atomically with the update, and raises
        ``StreamWindowMoved`` when the stream's window was not the one scored). Returns the
        outcome and, for ``behind``, the stored state."""
        ...

    async def list_events(
        self, stream_id: str, *, limit: int, before: int | None = None
    ) -> list[StoredEvent] | None:
        """The stream's events numbered below ``before`` (all when None), newest first, at
        most ``limit``; None when the stream does not exist."""
        ...

    async def add_feedback(
        self, stream_id: str, event_id: str, label: str, entry: bytes
    ) -> tuple[FeedbackStatus, StoredEvent | None]:
        """Record ``entry`` (JSON) with the event unless its current label is ``label``
        already; returns the outcome and the event with its feedback."""
        ...

    @property
    def recent_size(self) -> int:
        """Recent scores kept per stream (0: none are recorded)."""
        ...

    def record_recent(
        self,
        stream_id: str,
        entries: Sequence[RecentScore],
        *,
        restarted: bool,
        degraded: bool = False,
    ) -> None:
        """Record scored readings in the stream's ring of recent scores (``recent.py``), now
        or shortly after (Redis batches them; the append never waits for it). ``restarted``:
        the append that scored them started a new life of the stream, drop the previous
        life's. Nothing when the stream is gone; never raises."""
        ...

    async def recent(self, stream_id: str, *, limit: int) -> list[RecentScore] | None:
        """The newest ``limit`` recent scores, oldest first; None when the stream does not
        exist."""
        ...

    async def list_streams(self, *, limit: int, after: str | None = None) -> list[ListedStream]:
        """Live streams ordered by id, the first ``limit`` after ``after`` (``listing.py``)."""
        ...

    async def delete(self, stream_id: str) -> bool:
        """Forget a stream; True when it existed."""
        ...

    async def live_count(self) -> int:
        """Live (unexpired) streams counted against the bound."""
        ...

    async def check(self) -> bool:
        """Probe the backend now (for ``/health``); False while degraded."""
        ...

    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...


def check_stream_id(stream_id: str) -> str:
    """``stream_id`` unchanged, or ``InvalidStreamIdError``."""
    if not isinstance(stream_id, str) or _STREAM_ID.fullmatch(stream_id) is None:
        raise InvalidStreamIdError(
            f"invalid stream id {str(stream_id)[:140]!r}: expected 1-128 characters, letters, "
            "digits, '.', '_', ':' or '-', starting with a letter or digit"
        )
    return stream_id


def check_model_key(model_key: str) -> bytes:
    """The model key as UTF-8 bytes (1-255 of them); ``ValueError`` otherwise (caller bug)."""
    encoded = model_key.encode("utf-8")
    if not 1 <= len(encoded) <= MAX_MODEL_KEY_BYTES:
        raise ValueError(f"model_key must be 1-{MAX_MODEL_KEY_BYTES} UTF-8 bytes")
    return encoded


def check_window(window: int, max_window: int) -> int:
    """``window`` when ``1 <= window <= max_window``; ``ValueError`` otherwise (config bug)."""
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= max_window:
        raise ValueError(f"window must be an integer in [1, {max_window}], got {window!r}")
    return window


def to_records(
    stream_id: str, timestamps: Sequence[float] | NDArray[np.float64], rows: ArrayLike
) -> NDArray[np.float64]:
    """Readings as records of shape ``(n, 1 + n_features)``: timestamp, then the values.

    Checks the shape, that everything is finite and that the timestamps strictly
    increase within the call (``StreamOrderError`` names the first offender).
    """
    try:
        ts = np.asarray(timestamps, dtype=np.float64)
        X = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidReadingsError(f"readings are not numbers: {exc}") from None
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise InvalidReadingsError("timestamps must be a non-empty 1-D sequence")
    if X.ndim != 2 or X.shape[0] != ts.shape[0] or X.shape[1] == 0:
        raise InvalidReadingsError(
            f"rows must have shape (n_readings, n_features) with n_readings={ts.shape[0]} "
            f"and n_features >= 1, got {X.shape}"
        )
    records = np.empty((ts.shape[0], X.shape[1] + 1), dtype=RECORD_DTYPE)
    records[:, 0] = ts
    records[:, 1:] = X
    if not np.isfinite(records).all():  # one pass over everything; find the culprit after
        bad = ~np.isfinite(records)
        index = int(np.flatnonzero(bad.any(axis=1))[0])
        what = "timestamp" if bad[index, 0] else "values"
        raise InvalidReadingsError(f"reading {index}: {what} NaN or infinite")
    if ts.shape[0] > 1:
        steps = np.diff(ts)
        if (steps <= 0).any():
            index = int(np.flatnonzero(steps <= 0)[0]) + 1
            raise StreamOrderError(
                stream_id=stream_id,
                timestamp=float(ts[index]),
                previous=float(ts[index - 1]),
                index=index,
            )
    return records


def split_records(
    records: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Read-only ``(timestamps, values)`` of records; ``values`` is C-contiguous."""
    timestamps = records[:, 0].copy()
    values = np.ascontiguousarray(records[:, 1:])
    timestamps.flags.writeable = False
    values.flags.writeable = False
    return timestamps, values
