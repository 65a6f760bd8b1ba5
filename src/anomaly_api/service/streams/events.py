"""Events: a stream's anomalous readings grouped the way an operator reads them.

Rule (under the stream's ``AlarmPolicy``, positions in its unit):

* an event **opens** at a reading that raises an alarm while none is open. It starts at
  the earliest of the anomalies that raised it: the alarm's reading and the earlier
  anomalies (at most ``k - 1``, kept as ``pending``) lying less than ``window`` before it;
* while it is open, every anomalous reading joins it, and every answered reading names it;
* it **closes** at the first reading that lies ``window`` or more after its last anomalous
  reading (no ``k`` anomalies can then fall in one window with it: the policy has cleared).
  Its ``end`` is the timestamp of its last anomalous reading; the closing reading is not
  part of it. An idle stream's open event stays open until the next reading arrives.

Anomalies that raise no alarm (fewer than ``k``, or within the cool-down after an event)
open none. ``track`` is a pure function of (state, batch), like ``AlarmPolicy.evaluate``;
its state (``EventTrack``) rides in the stream's stored alarm state, so it is written by
the same compare-and-set, and each event's record (``EventRecord``, JSON) is written with it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from anomaly_api.monitoring.alarms import AlarmPolicy

__all__ = [
    "FEEDBACK_LABELS",
    "EventInput",
    "EventTrack",
    "Feedback",
    "OpenEvent",
    "Reading",
    "event_id",
    "parse_event_id",
    "track",
]

FEEDBACK_LABELS = ("false_alarm", "confirmed", "expected")
"""What an operator may say about an event (``expected``: e.g. planned maintenance)."""

TOP_SENSORS = 3
"""Sensors listed per event, largest mean share first."""

EXPECTED_SPREAD = 3.0
"""An event's expected range of a channel: its training median ± this many robust spreads."""


def expected_range(model: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each input channel's expected range, low and high, from a fitted model's robust
    scaling (``center_``, ``scale_``: training median and spread)."""
    center = np.asarray(model.center_, dtype=np.float64)
    spread = EXPECTED_SPREAD * np.asarray(model.scale_, dtype=np.float64)
    return center - spread, center + spread


def event_id(epoch: str, number: int) -> str:
    """An event's id: the stream life's epoch (8 hex) and the event's number in it."""
    return f"{epoch[:8]}-{number}"


def parse_event_id(value: str) -> tuple[str, int] | None:
    """``(epoch prefix, number)`` of an id, or None when it is not one."""
    prefix, _, number = value.partition("-")
    if len(prefix) != 8 or not number.isdigit() or len(number) > 12:
        return None
    try:
        int(prefix, 16)
    except ValueError:
        return None
    return prefix, int(number)


@functools.lru_cache(maxsize=256)
def _iso(seconds: float) -> str:
    """ISO 8601 in UTC; cached: an open event's record repeats its times at every reading."""
    return datetime.fromtimestamp(seconds, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class EventInput:
    """What the answered readings of an append bring to their events.

    ``severities`` (n,), ``shares`` and ``values`` (n, n_channels): each reading's severity,
    each channel's share of its anomaly and its raw value. ``channels`` names the channels;
    ``low``/``high`` (n_channels,) is each channel's expected range (the model's)."""

    severities: NDArray[np.float64]
    shares: NDArray[np.float64]
    values: NDArray[np.float64]
    channels: tuple[str, ...]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    why: tuple[Mapping[int, str], ...] = ()
    """Per reading, channel index -> the model's reason in words (a time-aware model's
    ``why`` of the channels its answer lists); empty when the model gives none."""
    kinds: tuple[str, ...] = ()
    """The kinds of evidence of ``deviations`` (a time-aware model's window features)."""
    deviations: NDArray[Any] | None = None
    """Per reading, each channel's deviation by kind (``|z|``), shape (n_channels,
    len(kinds)): an (n, n_channels, len(kinds)) array, or an object array with None for the
    readings that need none (not anomalous); None when the model gives none."""

    def reasons(self, i: int) -> Mapping[int, str]:
        """Reading ``i``'s reasons (none when the model gave none)."""
        return self.why[i] if i < len(self.why) else {}

    def deviation(self, i: int) -> tuple[float, ...]:
        """Reading ``i``'s deviations, channel-major, rounded to 0.01 (kept in the stream's
        state); empty when the model gave none."""
        values = self.deviations
        row = None if values is None or i >= len(values) or not self.kinds else values[i]
        if row is None:
            return ()
        return tuple([round(float(v), 2) for v in np.ravel(row).tolist()])

    def peaks(self, i: int, kept: tuple[float, ...]) -> tuple[float, ...]:
        """The element-wise maximum of ``kept`` (rounded deviations) and reading ``i``'s
        deviations (``_larger(kept, self.deviation(i))``), rounding only the deviations
        above what is kept: rounding to 0.01 never decreases and keeps a rounded value, so
        a deviation at or below a kept one leaves it as it is."""
        values = self.deviations
        row = None if values is None or i >= len(values) or not self.kinds else values[i]
        if row is None:
            return kept
        flat = np.ravel(row).tolist()
        if len(flat) != len(kept):  # none kept yet
            return _larger(kept, self.deviation(i))
        return tuple(
            [max(k, round(float(v), 2)) if v > k else k for k, v in zip(kept, flat, strict=True)]
        )


@dataclass(frozen=True, slots=True)
class Reading:
    """One anomalous reading as an event keeps it: number, time, severity, and per channel
    its share and value, the reasons the model gave (channel index -> words) and its
    deviations (``EventInput.deviation``)."""

    number: int
    time: float
    severity: float
    shares: tuple[float, ...]
    values: tuple[float, ...]
    why: Mapping[int, str] = field(default_factory=dict)
    deviations: tuple[float, ...] = ()

    def to_list(self) -> list[Any]:
        """JSON-serialisable form, without the deviations (``EventTrack.to_dict`` keeps them
        beside the list, which a reader that knows none of them skips)."""
        why = {str(c): text for c, text in self.why.items()}
        return [self.number, self.time, self.severity, self.shares, self.values, why]

    @classmethod
    def from_list(cls, data: list[Any], deviations: list[Any] | None = None) -> Reading:
        """Read ``to_list``'s output, and the reading's deviations when kept."""
        number, time, severity, shares, values, why = data
        return cls(
            int(number),
            float(time),
            float(severity),
            tuple(map(float, shares)),
            tuple(map(float, values)),
            {int(c): str(text) for c, text in why.items()},
            tuple(map(float, deviations or ())),
        )


@dataclass(frozen=True, slots=True)
class OpenEvent:
    """The accumulators of the event in progress (all per channel lists are full length)."""

    number: int
    start_reading: int
    start_time: float
    last_reading: int
    last_time: float
    anomalies: int
    peak: float
    share_sum: tuple[float, ...]
    best_share: tuple[float, ...]
    """Per channel: its largest share in one reading of the event..."""
    best_value: tuple[float, ...]
    """...the channel's value in that reading..."""
    best_time: tuple[float, ...]
    """...that reading's timestamp..."""
    best_why: tuple[str | None, ...]
    """...and the model's reason for the channel in that reading, when it gave one."""
    peak_deviation: tuple[float, ...] = ()
    """Per channel and kind (``Reading.deviations``): its largest in one reading of the
    event; empty when the model gives none."""

    def add(self, reading: Reading, peaks: tuple[float, ...] | None = None) -> OpenEvent:
        """The event with one more anomalous reading (plain Python: a few channels, one
        reading at a time, where NumPy's per-call overhead would dominate); ``peaks``: the
        event's peak deviations with the reading's, when computed already."""
        best_share, best_value, best_time, best_why = (
            list(self.best_share),
            list(self.best_value),
            list(self.best_time),
            list(self.best_why),
        )
        time, values, why = reading.time, reading.values, reading.why
        for c, share in enumerate(reading.shares):
            if share > best_share[c]:
                best_share[c], best_value[c], best_time[c] = share, values[c], time
                best_why[c] = why.get(c)
        return OpenEvent(
            number=self.number,
            start_reading=self.start_reading,
            start_time=self.start_time,
            last_reading=max(self.last_reading, reading.number),
            last_time=max(self.last_time, time),
            anomalies=self.anomalies + 1,
            peak=max(self.peak, reading.severity),
            share_sum=tuple([a + b for a, b in zip(self.share_sum, reading.shares, strict=True)]),
            best_share=tuple(best_share),
            best_value=tuple(best_value),
            best_time=tuple(best_time),
            best_why=tuple(best_why),
            peak_deviation=(
                _larger(self.peak_deviation, reading.deviations) if peaks is None else peaks
            ),
        )

    def _peak_z(self, channel: int, kinds: tuple[str, ...]) -> dict[str, dict[str, float]]:
        """``{"peak_z": {kind: largest deviation}}`` of one channel (empty without them)."""
        n = len(kinds)
        peaks = self.peak_deviation[channel * n : (channel + 1) * n]
        if not n or len(self.peak_deviation) % n or len(peaks) != n:
            return {}
        return {"peak_z": dict(zip(kinds, peaks, strict=True))}

    @classmethod
    def start(cls, number: int, reading: int, time: float, n_channels: int) -> OpenEvent:
        """An empty event starting at ``reading``."""
        zeros = (0.0,) * n_channels
        return cls(
            number,
            reading,
            time,
            reading,
            time,
            0,
            0.0,
            zeros,
            (-1.0,) * n_channels,
            zeros,
            zeros,
            (None,) * n_channels,
        )

    def record(self, epoch: str, inputs: EventInput, *, closed: bool) -> bytes:
        """The event as stored and listed (JSON), without its feedback."""
        count = max(self.anomalies, 1)
        mean = [total / count for total in self.share_sum]
        order = sorted(range(len(mean)), key=lambda c: -mean[c])[:TOP_SENSORS]  # stable
        sensors = [
            {
                "feature": inputs.channels[c],
                "share": mean[c],
                "read": self.best_value[c],
                "read_at": _iso(self.best_time[c]),
                "why": self.best_why[c],
                "expected_low": float(inputs.low[c]),
                "expected_high": float(inputs.high[c]),
            }
            | self._peak_z(c, inputs.kinds)
            for c in order
            if self.best_share[c] >= 0
        ]
        return orjson.dumps(
            {
                "id": event_id(epoch, self.number),
                "start": _iso(self.start_time),
                "end": _iso(self.last_time) if closed else None,
                "open": not closed,
                "last_anomaly": _iso(self.last_time),
                "peak_severity": self.peak,
                "readings": self.last_reading - self.start_reading + 1,
                "anomalies": self.anomalies,
                "first_reading": self.start_reading,
                "top_sensors": sensors,
            }
        )


@dataclass(frozen=True, slots=True)
class EventTrack:
    """A stream's event state: the next event's number, the anomalies an alarm may still
    claim (at most ``k - 1``) and the event in progress."""

    next: int = 1
    pending: tuple[Reading, ...] = ()
    open: OpenEvent | None = None

    def settled(self, policy: AlarmPolicy, reading: int, time: float) -> EventTrack:
        """The state once the policy has cleared at ``reading``: the pending anomalies a
        later alarm can no longer claim dropped (the stored state stays small)."""
        if not self.pending:
            return self
        seconds = policy.unit == "seconds"
        here = time if seconds else reading
        keep = tuple(
            p for p in self.pending if here - (p.time if seconds else p.number) < policy.window
        )
        return self if len(keep) == len(self.pending) else replace(self, pending=keep)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the pending readings' deviations, when any, under a key
        of their own: a state stays readable by code that knows none)."""
        data: dict[str, Any] = {
            "next": self.next,
            "pending": [p.to_list() for p in self.pending],
            "open": None if self.open is None else _open_to_dict(self.open),
        }
        if any(p.deviations for p in self.pending):
            data["pending_deviations"] = [p.deviations for p in self.pending]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventTrack:
        """Read ``to_dict``'s output; ``ValueError`` when malformed."""
        try:
            raw, pending = data["open"], data["pending"]
            deviations = data.get("pending_deviations") or [None] * len(pending)
            return cls(
                next=int(data["next"]),
                pending=tuple(
                    Reading.from_list(p, d) for p, d in zip(pending, deviations, strict=True)
                ),
                open=None if raw is None else OpenEvent(**_open_from_dict(raw)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed event state: {exc!r}") from exc


_TUPLES = ("share_sum", "best_share", "best_value", "best_time", "peak_deviation")
_OPTIONAL = {"peak_deviation": ()}
"""Fields a stored open event may lack (stored without them), and their value then."""


def _open_to_dict(event: OpenEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in OpenEvent.__slots__}


def _open_from_dict(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in OpenEvent.__slots__:
        if name not in data and name in _OPTIONAL:
            out[name] = _OPTIONAL[name]
            continue
        value = data[name]
        if name in _TUPLES:
            out[name] = tuple(map(float, value))
        elif name == "best_why":
            out[name] = tuple(None if x is None else str(x) for x in value)
        elif name in ("number", "start_reading", "last_reading", "anomalies"):
            out[name] = int(value)
        else:
            out[name] = float(value)
    return out


def track(
    state: EventTrack,
    policy: AlarmPolicy,
    *,
    epoch: str,
    first: int,
    flags: NDArray[np.bool_],
    alarms: NDArray[np.bool_],
    times: NDArray[np.float64],
    inputs: EventInput,
) -> tuple[EventTrack, list[str | None], list[tuple[str, bytes]]]:
    """Events after the readings numbered ``first, first + 1, ...`` (module doc).

    Returns the new state, each reading's event id (None outside any) and the records to
    write: ``(id, JSON)`` of every event opened, changed or closed by these readings."""
    n = len(flags)
    if state.open is None and not flags.any():  # most appends: nothing to do
        return state, [None] * n, []
    seconds = policy.unit == "seconds"
    keep = max(policy.k - 1, 0)
    n_channels = len(inputs.channels)
    pending = list(state.pending)
    current = state.open
    number = state.next
    ids: list[str | None] = []
    written: dict[str, bytes] = {}

    def position(reading: float, time: float) -> float:
        return time if seconds else reading

    flagged, alarmed, stamps = flags.tolist(), alarms.tolist(), times.tolist()
    for i in range(n):
        reading, time = first + i, stamps[i]
        if (
            current is not None
            and position(reading, time) - position(current.last_reading, current.last_time)
            >= policy.window
        ):  # the policy has cleared: the event ended with its last anomaly
            written[event_id(epoch, current.number)] = current.record(epoch, inputs, closed=True)
            current = None
        if not flagged[i]:  # a normal reading: inside the open event, if any
            ids.append(None if current is None else event_id(epoch, current.number))
            continue
        joins = current is not None  # the open event's peaks take its deviations
        this = Reading(
            reading,
            time,
            float(inputs.severities[i]),
            tuple(_channel_row(inputs.shares, i, n_channels).tolist()),
            tuple(_channel_row(inputs.values, i, n_channels).tolist()),
            inputs.reasons(i),
            () if joins else inputs.deviation(i),
        )
        if current is None and not alarmed[i]:  # an anomaly an alarm may still claim
            if keep:
                pending = [*pending, this][-keep:]
            ids.append(None)
            continue
        if current is None:  # opens an event with the anomalies that raised the alarm
            here = position(reading, time)
            claimed = [p for p in pending if here - position(p.number, p.time) < policy.window]
            start = claimed[0] if claimed else this
            current = OpenEvent.start(number, start.number, start.time, n_channels)
            number += 1
            pending = []
            for p in claimed:
                current = current.add(p)
        peaks = inputs.peaks(i, current.peak_deviation) if joins else None
        current = current.add(this, peaks)
        written[event_id(epoch, current.number)] = current.record(epoch, inputs, closed=False)
        ids.append(event_id(epoch, current.number))
    new = EventTrack(next=number, pending=tuple(pending), open=current)
    return new, ids, list(written.items())


def _larger(kept: tuple[float, ...], new: tuple[float, ...]) -> tuple[float, ...]:
    """Element-wise maximum; ``new`` alone when the lengths differ (none kept yet)."""
    if len(kept) != len(new):
        return new or kept
    return tuple([max(a, b) for a, b in zip(kept, new, strict=True)])


def _channel_row(matrix: NDArray[np.float64], i: int, n_channels: int) -> NDArray[np.float64]:
    """Row ``i`` of a per-channel matrix; zeros when the model gave none (no shares)."""
    if matrix.ndim == 2 and matrix.shape[1] == n_channels and i < matrix.shape[0]:
        return np.asarray(matrix[i], dtype=np.float64)
    return np.zeros(n_channels)


@dataclass(frozen=True, slots=True)
class Feedback:
    """One operator label of an event."""

    label: str
    note: str
    by: str
    at: float = field(default=0.0)

    def to_json(self) -> bytes:
        """The stored form (JSON)."""
        return orjson.dumps(
            {"label": self.label, "note": self.note, "by": self.by, "at": _iso(self.at)}
        )
