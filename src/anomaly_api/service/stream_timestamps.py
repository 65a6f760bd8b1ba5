"""Timestamps of stream readings: parsed from what clients send, written back as they sent them.

Clients send ISO 8601 strings (no zone = UTC) or epoch seconds; the stream store keeps
epoch seconds (float64). Answers write times as ISO 8601 in UTC (``iso``); an order error
names the offending timestamps as the client wrote them (``as_sent``). The readings of a
window (``/predict/window``) are put in order as training puts a file's (``tidy``): a
repeated timestamp is merged into the reading before it (the mean), a reading whose clock
stepped back is skipped; the answers name the readings they are of by ``index``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from anomaly_api.service.errors import InvalidTimestampsError
from anomaly_api.service.streams import StreamOrderError

__all__ = ["Tidied", "Timestamp", "as_sent", "iso", "parse_timestamps", "tidy"]

Timestamp = str | float | int


def iso(seconds: float) -> str:
    """Epoch seconds as ISO 8601 in UTC (``2026-11-29T18:00:00+00:00``)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def parse_timestamps(values: Sequence[Timestamp], n_readings: int) -> NDArray[np.float64]:
    """Epoch seconds of ISO 8601 strings (no zone = UTC) or numbers; one per reading."""
    if len(values) != n_readings:
        raise InvalidTimestampsError(
            f"expected one timestamp per reading ({n_readings}), got {len(values)}"
        )
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise InvalidTimestampsError(
                    f"timestamps[{i}]: {value[:64]!r} is not an ISO 8601 time"
                ) from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            out[i] = parsed.timestamp()
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise InvalidTimestampsError(f"timestamps[{i}]: not a finite number")
            out[i] = float(value)
        else:
            raise InvalidTimestampsError(
                f"timestamps[{i}]: expected an ISO 8601 string or epoch seconds"
            )
    return out


@dataclass(frozen=True)
class Tidied:
    """Readings in strictly increasing time, and what became of the ones sent."""

    timestamps: NDArray[np.float64]
    values: NDArray[np.float64]
    kept: NDArray[np.intp]
    """Position in the request of each reading kept (the first of merged ones)."""
    reading: NDArray[np.intp]
    """For each reading sent, the kept reading it became (merged ones share it), or -1
    when it was skipped."""
    merged: int
    """Readings merged into the one before them (same timestamp)."""
    skipped: int
    """Readings skipped because their clock stepped back."""


def tidy(ts: NDArray[np.float64], values: NDArray[np.float64]) -> Tidied:
    """Merge repeated timestamps (mean of the readings) and skip readings before the
    latest earlier one (a clock stepping back); both counted."""
    latest = np.maximum.accumulate(ts)
    back = np.concatenate([[False], ts[1:] < latest[:-1]])
    keep = np.flatnonzero(~back)
    repeat = np.concatenate([[False], ts[keep][1:] == ts[keep][:-1]])
    starts = keep[~repeat]
    if len(starts) == len(ts):
        every = np.arange(len(ts))
        return Tidied(ts, values, every, every, 0, 0)
    group_starts = np.flatnonzero(~repeat)
    sums = np.add.reduceat(values[keep], group_starts, axis=0)
    counts = np.diff(np.append(group_starts, len(keep)))
    reading = np.full(len(ts), -1, dtype=np.intp)
    reading[keep] = np.cumsum(~repeat) - 1
    return Tidied(
        timestamps=ts[starts],
        values=sums / counts[:, None],
        kept=starts,
        reading=reading,
        merged=int(repeat.sum()),
        skipped=int(back.sum()),
    )


def _shown(value: Timestamp) -> str:
    return repr(value)  # a string quoted, a number as the client wrote it


def as_sent(exc: StreamOrderError, timestamps: Sequence[Timestamp]) -> StreamOrderError:
    """``exc`` naming the timestamps as the client wrote them (ISO 8601 stays ISO 8601)."""
    said = timestamps[exc.index]
    if exc.index > 0:
        return exc.showing(_shown(said), _shown(timestamps[exc.index - 1]))
    previous = repr(iso(exc.previous)) if isinstance(said, str) else repr(exc.previous)
    return exc.showing(_shown(said), previous)
