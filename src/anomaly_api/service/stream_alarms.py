"""Per-stream alarms: the ``AlarmPolicy`` over each stream's readings, its state kept with it.

The window append is atomic (one script in Redis), but the alarm state can only be
updated after scoring, and two requests for one stream (on one replica or on two) may
finish scoring in either order. The rule is sequential (the cool-down), so updates must
apply in reading order. ``stream_alarms`` does it with a compare-and-set keyed on the
reading count: the readings of an append are numbers ``[total - n, total)``; its update
applies only to a stored state that has evaluated exactly ``total - n`` readings, in the
same life of the stream (``StoredAlarm.epoch``). When the state lags (an earlier request
is still scoring) it waits a little and re-reads, a bounded number of times; then it
fails open: the readings not evaluated yet count as normal, and the late request's
update is refused later (its answer keeps the alarms it computed, they are not stored).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from anomaly_api.detection.contributions import severity_from_score
from anomaly_api.monitoring.adaptation import AdaptationModel, AdaptiveState, adapt
from anomaly_api.monitoring.alarms import AlarmPolicy, AlarmState
from anomaly_api.monitoring.widening import Deviations, Shares
from anomaly_api.service.streams import StoredAlarm, StreamStore, StreamWindow
from anomaly_api.service.streams.events import EventInput, EventTrack
from anomaly_api.service.streams.events import track as track_events

__all__ = [
    "RETRY_DELAYS_S",
    "Adaptation",
    "Evaluated",
    "StreamAlarms",
    "advance",
    "advance_adapted",
    "advance_events",
    "window_alarms",
]

_log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08)
"""Waits (seconds) for an earlier request's alarm update while the stored state makes no
progress: after 157 ms without any (an earlier request still scoring on a loaded replica,
or one that died), fail open."""
MAX_ATTEMPTS = 32
"""Reads of the stored state per append at most, progress or not (a long queue of appends
to one stream: each waits for the one before it)."""

Sleep = Callable[[float], Awaitable[None]]


def window_alarms(
    policy: AlarmPolicy, flags: NDArray[np.bool_], times: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Alarms of readings evaluated from a fresh state (``/predict/window``: no state)."""
    alarms, _ = policy.evaluate(AlarmState(), flags, times if policy.unit == "seconds" else None)
    return alarms


def advance(
    stored: StoredAlarm,
    policy: AlarmPolicy,
    first: int,
    flags: NDArray[np.bool_],
    times: NDArray[np.float64],
    *,
    adaptive: AdaptiveState | None = None,
) -> tuple[NDArray[np.bool_], StoredAlarm]:
    """Alarms of the readings numbered ``first, first + 1, ...`` and ``stored`` after them
    (with ``adaptive`` as its adaptive state when given).

    A stored state in another unit keeps its counts but drops its positions (recent
    anomalies, last alarm): readings and seconds cannot be compared. Readings before
    ``first`` the state has not evaluated count as normal.
    """
    state = stored.state
    if stored.unit is not None and stored.unit != policy.unit:
        state = AlarmState(seen=state.seen, alarms=state.alarms)
    if state.seen < first:
        state = replace(state, seen=first)
    adaptive = stored.adaptive if adaptive is None else adaptive
    if not flags.any():  # most appends: only the count moves (what ``evaluate`` would do)
        return np.zeros(len(flags), dtype=bool), replace(
            stored,
            state=replace(state, seen=state.seen + len(flags)),
            unit=policy.unit,
            adaptive=adaptive,
        )
    seconds = policy.unit == "seconds"
    try:
        alarms, new = policy.evaluate(state, flags, times if seconds else None)
    except ValueError:  # times before the stored positions (a state written out of order)
        state = AlarmState(seen=state.seen, alarms=state.alarms)
        alarms, new = policy.evaluate(state, flags, times if seconds else None)
    last_reading, last_time = stored.last_alarm_reading, stored.last_alarm_time
    raised = alarms.tolist()
    if True in raised:
        last = len(raised) - 1 - raised[::-1].index(True)
        last_reading = first + last
        last_time = float(times[last])
    return alarms, replace(
        stored,
        state=new,
        unit=policy.unit,
        last_alarm_reading=last_reading,
        last_alarm_time=last_time,
        adaptive=adaptive,
    )


def advance_events(
    stored: StoredAlarm,
    policy: AlarmPolicy,
    first: int,
    flags: NDArray[np.bool_],
    times: NDArray[np.float64],
    *,
    inputs: Callable[[], EventInput] | None,
    adaptive: AdaptiveState | None = None,
) -> tuple[NDArray[np.bool_], StoredAlarm, list[str | None], list[tuple[str, bytes]]]:
    """``advance``, then the events of the same readings (``streams/events.py``): each
    reading's event id and the event records to write with the state. ``inputs`` is only
    called when the readings can change an event (an anomaly, or an event open)."""
    alarms, new = advance(stored, policy, first, flags, times, adaptive=adaptive)
    before = new.events
    if inputs is None or ((before is None or before.open is None) and not flags.any()):
        if before is not None and before.pending and len(flags):  # drop what cannot count
            settled = before.settled(policy, first + len(flags) - 1, float(times[-1]))
            new = new if settled is before else replace(new, events=settled)
        return alarms, new, [None] * len(flags), []
    state, ids, written = track_events(
        before or EventTrack(),
        policy,
        epoch=new.epoch,
        first=first,
        flags=flags,
        alarms=alarms,
        times=times,
        inputs=inputs(),
    )
    if state is not before:
        new = replace(new, events=state)
    return alarms, new, ids, written


@dataclass(frozen=True)
class Adaptation:
    """What an append brings to the stream's adaptive state (``monitoring/adaptation.py``)."""

    model: AdaptationModel
    scores: NDArray[np.float64]
    """The answered readings' anomaly scores, as the model gave them."""
    warming_up: NDArray[np.bool_]
    shares: Shares | None = None
    """Their shares per channel (what feedback's per-sensor allowances weigh)."""
    channels: tuple[str, ...] = ()
    deviations: Deviations | None = None
    """Their deviations per channel and kind (what bounds each allowance)."""


@dataclass(frozen=True)
class Evaluated:
    """An append's readings after adaptation and the alarm policy, and the stored state."""

    alarms: NDArray[np.bool_]
    stored: StoredAlarm
    event_ids: list[str | None]
    flags: NDArray[np.bool_]
    """The anomaly flags answered (adapted when ``scores`` is not None)."""
    scores: NDArray[np.float64] | None = None
    """The adapted anomaly scores (the model's minus the threshold's raise); None: the
    append did not adapt."""
    severity: NDArray[np.float64] | None = None
    """``severity_from_score(scores)`` (None with them)."""


def advance_adapted(
    stored: StoredAlarm,
    policy: AlarmPolicy,
    first: int,
    flags: NDArray[np.bool_],
    times: NDArray[np.float64],
    *,
    inputs: Callable[[], EventInput] | None,
    adaptation: Adaptation | None,
) -> tuple[Evaluated, list[tuple[str, bytes]]]:
    """The stream's adaptive state over the readings (when ``adaptation``), then
    ``advance_events`` over the adapted flags; the event records to write come second."""
    scores = adaptive = severity = None
    if adaptation is not None:
        flags, shifts, adaptive = adapt(
            adaptation.model,
            stored.adaptive or AdaptiveState(),
            adaptation.scores,
            flags,
            adaptation.warming_up,
            shares=adaptation.shares,
            channels=adaptation.channels,
            deviations=adaptation.deviations,
        )
        scores = adaptation.scores - shifts
        severity = severity_from_score(scores)
        if inputs is not None:
            inputs = _with_severities(inputs, severity)
    alarms, new, ids, written = advance_events(
        stored, policy, first, flags, times, inputs=inputs, adaptive=adaptive
    )
    return Evaluated(alarms, new, ids, flags, scores, severity), written


def _with_severities(
    inputs: Callable[[], EventInput], severity: NDArray[np.float64]
) -> Callable[[], EventInput]:
    """``inputs`` with the adapted readings' ``severity``."""
    return lambda: replace(inputs(), severities=severity)


class StreamAlarms:
    """Evaluates and stores the alarms of each append to a stream (see the module doc)."""

    def __init__(self, store: StreamStore, *, sleep: Sleep = asyncio.sleep) -> None:
        self.store = store
        self._sleep = sleep
        self.not_stored = 0
        """Appends whose alarm state could not be stored (answered from a local evaluation)."""

    async def evaluate(
        self,
        window: StreamWindow,
        n_new: int,
        flags: NDArray[np.bool_],
        policy: AlarmPolicy,
    ) -> tuple[NDArray[np.bool_], StoredAlarm]:
        """Alarms of the answered readings (the last ``len(flags)`` of the window) of an
        append of ``n_new`` readings, and the stream's alarm state after them."""
        alarms, stored, _ = await self.evaluate_events(window, n_new, flags, policy, None)
        return alarms, stored

    async def evaluate_events(
        self,
        window: StreamWindow,
        n_new: int,
        flags: NDArray[np.bool_],
        policy: AlarmPolicy,
        inputs: Callable[[], EventInput] | None,
    ) -> tuple[NDArray[np.bool_], StoredAlarm, list[str | None]]:
        """``evaluate``, and each answered reading's event id; the events are stored with
        the alarm state (``inputs`` None: no events tracked)."""
        done = await self.evaluate_adapted(
            window, n_new, flags, policy, inputs=inputs, adaptation=None
        )
        return done.alarms, done.stored, done.event_ids

    async def evaluate_adapted(
        self,
        window: StreamWindow,
        n_new: int,
        flags: NDArray[np.bool_],
        policy: AlarmPolicy,
        *,
        inputs: Callable[[], EventInput] | None,
        adaptation: Adaptation | None,
    ) -> Evaluated:
        """``evaluate_events`` after the stream's adaptive state (``adaptation`` None:
        the append does not adapt, the state stays as it is)."""
        expected = window.total - n_new  # readings of the stream before this append
        first = window.total - len(flags)  # unanswered readings (a tiny window) are normal
        times = window.timestamps[len(window) - len(flags) :]
        start = window.alarm
        stored = start
        degraded = window.degraded
        stalls = attempts = 0
        progress = -1
        while stored is not None and start is not None and stored.epoch == start.epoch:
            seen = stored.state.seen
            if seen > expected:  # a later request went past these readings
                break
            stalls = 0 if seen > progress else stalls + 1
            progress = seen
            attempts += 1
            if seen < expected and stalls < len(RETRY_DELAYS_S) and attempts < MAX_ATTEMPTS:
                await self._sleep(RETRY_DELAYS_S[stalls])
                stored = await self.store.read_alarm(window.stream_id, degraded=degraded)
                continue
            # fail-open when behind
            done, written = advance_adapted(
                stored, policy, first, flags, times, inputs=inputs, adaptation=adaptation
            )
            status, _ = await self.store.update_alarm(
                window.stream_id,
                done.stored,
                expected_seen=seen,
                degraded=degraded,
                events=written,
                window=window,
            )
            if status == "ok":
                return done
            if status == "failed" or attempts >= MAX_ATTEMPTS:
                break
            stored = await self.store.read_alarm(window.stream_id, degraded=degraded)
        self.not_stored += 1
        _log.info("stream %r: alarm state not stored (concurrent update)", window.stream_id)
        local = start if start is not None else StoredAlarm(epoch="")
        done, _ = advance_adapted(
            local, policy, first, flags, times, inputs=inputs, adaptation=adaptation
        )
        return done
