"""Alarms, not single outliers: "k anomalies within a window, then a cool-down".

Rule (``AlarmPolicy``): an **anomalous** reading raises an alarm when it and at least
``k - 1`` earlier anomalies of the same stream lie within ``window`` (the positions of
the first and the last of those k differ by less than ``window``), unless an alarm was
raised within the last ``cooldown``. Positions are reading numbers (``unit="readings"``:
the window counts readings, ``k=3, window=5`` is "3 of the last 5") or timestamps in
seconds (``unit="seconds"``). ``k=1, window=1, cooldown=0`` alarms on every anomaly.

The state of one stream (``AlarmState``) is small and bounded: the positions of its
last ``k - 1`` anomalies, the position of its last alarm and the number of readings
seen. It round-trips through ``to_dict``/``from_dict`` (JSON), so a Redis-backed
stream store can keep it next to the stream's window. ``AlarmPolicy.evaluate`` is a
pure function of (state, batch) and is vectorised: NumPy over the batch, a Python
step only per alarm raised.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Unit = Literal["readings", "seconds"]
SERVICE_STREAM = "_service"
"""Key under which ``AlarmTracker`` keeps the whole service's state."""


@dataclass(frozen=True)
class AlarmState:
    """One stream's alarm state; ``AlarmState()`` is a fresh stream."""

    recent: tuple[float, ...] = ()
    """Positions of the last (at most k - 1) anomalies, oldest first."""
    last_alarm: float | None = None
    seen: int = 0
    """Readings evaluated so far (the next reading's number in ``readings`` mode)."""
    alarms: int = 0
    """Alarms raised so far."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "recent": list(self.recent),
            "last_alarm": self.last_alarm,
            "seen": self.seen,
            "alarms": self.alarms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlarmState:
        """Read ``to_dict``'s output; malformed state raises ``ValueError``."""
        try:
            recent = tuple(map(float, data["recent"]))
            last = data["last_alarm"]
            state = cls(
                recent=recent,
                last_alarm=None if last is None else float(last),
                seen=int(data["seen"]),
                alarms=int(data["alarms"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed alarm state: {exc!r}") from exc
        values = [*state.recent, *([] if state.last_alarm is None else [state.last_alarm])]
        if not all(math.isfinite(v) for v in values) or state.seen < 0 or state.alarms < 0:
            raise ValueError("malformed alarm state: non-finite position or negative count")
        return state


@dataclass(frozen=True)
class AlarmPolicy:
    """At least ``k`` anomalies within ``window`` raise an alarm; then ``cooldown``."""

    k: int = 3
    window: float = 10
    cooldown: float = 30
    unit: Unit = "readings"

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be a positive integer, got {self.k!r}")
        if not (math.isfinite(self.window) and self.window > 0):
            raise ValueError(f"window must be a positive number, got {self.window!r}")
        if not (math.isfinite(self.cooldown) and self.cooldown >= 0):
            raise ValueError(f"cooldown must be a non-negative number, got {self.cooldown!r}")
        if self.unit not in ("readings", "seconds"):
            raise ValueError(f"unit must be 'readings' or 'seconds', got {self.unit!r}")
        if self.unit == "readings" and self.k > self.window:
            raise ValueError(
                f"k={self.k} anomalies cannot fit in a window of {self.window} readings"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for a per-request policy or the docs)."""
        return {"k": self.k, "window": self.window, "cooldown": self.cooldown, "unit": self.unit}

    def _positions(
        self, state: AlarmState, n: int, times: ArrayLike | None, anomalous: list[int]
    ) -> list[float]:
        """The positions of the readings ``anomalous`` (indices into the batch): reading
        numbers (``float(seen + i)``, what ``np.arange(seen, seen + n, dtype=float)`` holds)
        or the times given."""
        if self.unit == "readings":
            if times is not None:
                raise ValueError("times are only used by a policy in seconds")
            seen = state.seen
            return [float(seen + i) for i in anomalous]
        if times is None:
            raise ValueError("a policy in seconds needs the readings' times")
        t = np.asarray(times, dtype=np.float64)
        if t.shape != (n,):
            raise ValueError(f"times must have one value per reading ({n}), got shape {t.shape}")
        if not np.all(np.isfinite(t)):
            raise ValueError("times contain non-finite values")
        previous = [*state.recent, *([] if state.last_alarm is None else [state.last_alarm])]
        if np.any(np.diff(t) < 0) or (n and previous and t[0] < max(previous)):
            raise ValueError("times must not go backwards within a stream")
        at: list[float] = t[anomalous].tolist()
        return at

    def evaluate(
        self, state: AlarmState, is_anomaly: ArrayLike, times: ArrayLike | None = None
    ) -> tuple[NDArray[np.bool_], AlarmState]:
        """Alarms for a batch of one stream's readings, oldest first, and the new state.

        Parameters
        ----------
        state : AlarmState
            The stream's state before the batch.
        is_anomaly : array-like of bool, shape (n_readings,)
        times : array-like of float, shape (n_readings,), optional
            Seconds (e.g. Unix time) of each reading; required when ``unit="seconds"``.
        """
        flags = np.asarray(is_anomaly)
        if flags.ndim != 1 or (flags.size and flags.dtype != np.bool_):
            raise ValueError("is_anomaly must be a 1-D array of booleans")
        n = flags.shape[0]
        anomalous_index = (  # a stream's few readings in plain Python, a backtest in NumPy
            [i for i, flag in enumerate(flags.tolist()) if flag]
            if n <= 16
            else np.flatnonzero(flags).tolist()
        )
        positions = self._positions(state, n, times, anomalous_index)
        history = list(state.recent)
        alarms = np.zeros(n, dtype=bool)
        k, window, cooldown = self.k, self.window, self.cooldown
        last = state.last_alarm
        raised = 0
        # A plain loop over the anomalies (a stream's batch holds one reading or a few,
        # where NumPy's per-call overhead would dominate). An anomaly completes k within
        # the window when the anomaly k - 1 places earlier lies less than ``window``
        # before it; it raises an alarm when it also lies strictly after the last
        # alarm's position plus the cool-down.
        for index, here in zip(anomalous_index, positions, strict=True):
            history.append(here)
            completes = len(history) >= k and here - history[-k] < window
            if completes and (last is None or here > last + cooldown):
                alarms[index] = True
                last = here
                raised += 1
            if len(history) > k:  # keep the k anomalies the next one may need
                del history[: len(history) - k]
        keep = max(k - 1, 0)
        new_state = AlarmState(
            recent=tuple(history[len(history) - keep :]) if keep else (),
            last_alarm=last,
            seen=state.seen + n,
            alarms=state.alarms + raised,
        )
        return alarms, new_state


@dataclass
class AlarmTracker:
    """In-process alarm states per stream and for the whole service, behind one lock.

    A Redis-backed store keeps ``AlarmState.to_dict()`` per stream instead and calls
    ``AlarmPolicy.evaluate`` the same way.
    """

    policy: AlarmPolicy
    _states: dict[str, AlarmState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(
        self, stream: str, is_anomaly: ArrayLike, times: ArrayLike | None = None
    ) -> NDArray[np.bool_]:
        """Alarms of a batch of ``stream``'s readings (use ``SERVICE_STREAM`` for all)."""
        with self._lock:
            alarms, self._states[stream] = self.policy.evaluate(
                self._states.get(stream, AlarmState()), is_anomaly, times
            )
        return alarms

    def state(self, stream: str) -> AlarmState:
        """The stream's current state (fresh when never seen)."""
        with self._lock:
            return self._states.get(stream, AlarmState())
