"""Events as a pure function of (state, readings): when one opens and closes, what it holds,
and that feeding readings one at a time gives the same events as one batch."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_api.monitoring.alarms import AlarmPolicy, AlarmState
from anomaly_api.service.streams.base import StoredAlarm
from anomaly_api.service.streams.events import (
    EventInput,
    EventTrack,
    _larger,
    event_id,
    parse_event_id,
    track,
)

EPOCH = "0123456789abcdef"
CHANNELS = ("a", "b")


def _inputs(flags: list[bool], start: int = 0) -> EventInput:
    n = len(flags)
    # channel "b" carries every anomaly but the first, channel "a" the first one
    shares = np.array([[1.0, 0.0] if start + i == 1 else [0.2, 0.8] for i in range(n)])
    return EventInput(
        severities=np.array([0.5 + 0.01 * (start + i) if f else 0.0 for i, f in enumerate(flags)]),
        shares=shares,
        values=np.array([[float(start + i), 100.0 + start + i] for i in range(n)]),
        channels=CHANNELS,
        low=np.array([-3.0, -3.0]),
        high=np.array([3.0, 3.0]),
        why=tuple({1: f"reason {start + i}"} for i in range(n)),  # only channel "b" has one
    )


def _run(
    policy: AlarmPolicy, flags: list[bool], chunks: list[int]
) -> tuple[list[str | None], dict[str, dict[str, Any]], EventTrack]:
    """Feed ``flags`` in chunks of the given sizes; every record written, last one wins."""
    state, alarm_state = EventTrack(), AlarmState()
    ids: list[str | None] = []
    records: dict[str, dict[str, Any]] = {}
    first = 0
    for size in chunks:
        part = np.array(flags[first : first + size], dtype=bool)
        times = np.arange(first, first + size, dtype=np.float64) * 10.0
        seconds = times if policy.unit == "seconds" else None
        alarms, alarm_state = policy.evaluate(alarm_state, part, seconds)
        state, part_ids, written = track(
            state,
            policy,
            epoch=EPOCH,
            first=first,
            flags=part,
            alarms=alarms,
            times=times,
            inputs=_inputs(part.tolist(), first),
        )
        ids += part_ids
        records |= {eid: json.loads(record) for eid, record in written}
        first += size
    return ids, records, state


FLAGS = [False, True, True, False, False, False, True, False, True, True, True, False, False]
# k=2 within 3 readings, no cool-down: reading 2 raises an alarm with reading 1 (event 1
# starts at reading 1, answered before the event existed), 3 and 4 are inside it, 5 closes
# it (3 readings after its last anomaly); 6 is a lone anomaly, 8 raises an alarm with it
# (8 - 6 < 3): event 2 starts at 6 and is still open after 12.
POLICY = AlarmPolicy(k=2, window=3, cooldown=0)


def test_an_event_opens_with_the_anomalies_of_its_alarm_and_closes_once_the_policy_clears() -> None:
    ids, records, state = _run(POLICY, FLAGS, [len(FLAGS)])
    one, two = event_id(EPOCH, 1), event_id(EPOCH, 2)
    assert ids == [None, None, one, one, one, None, None, None, two, two, two, two, two]
    first = records[one]
    assert (first["start"], first["end"], first["open"]) == (
        "1970-01-01T00:00:10+00:00",
        "1970-01-01T00:00:20+00:00",
        False,
    )
    assert (first["readings"], first["anomalies"], first["first_reading"]) == (2, 2, 1)
    assert first["peak_severity"] == pytest.approx(0.52)
    # mean shares over its two anomalies: a (1.0 + 0.2) / 2, b (0.0 + 0.8) / 2
    sensors = {s["feature"]: s for s in first["top_sensors"]}
    assert sensors["a"]["share"] == pytest.approx(0.6)
    assert sensors["b"]["share"] == pytest.approx(0.4)
    assert [s["feature"] for s in first["top_sensors"]] == ["a", "b"]
    assert (sensors["a"]["read"], sensors["a"]["read_at"]) == (1.0, "1970-01-01T00:00:10+00:00")
    assert (sensors["b"]["read"], sensors["b"]["read_at"]) == (102.0, "1970-01-01T00:00:20+00:00")
    assert (sensors["a"]["expected_low"], sensors["a"]["expected_high"]) == (-3.0, 3.0)
    assert (sensors["a"]["why"], sensors["b"]["why"]) == (None, "reason 2")
    second = records[two]
    assert (second["open"], second["end"]) == (True, None)
    assert (second["first_reading"], second["readings"], second["anomalies"]) == (6, 5, 4)
    assert state.open is not None
    assert (state.open.number, state.next) == (2, 3)


@pytest.mark.parametrize("chunks", [[1] * len(FLAGS), [3, 4, 6], [2, 11]])
def test_readings_one_by_one_or_in_batches_give_the_same_events(chunks: list[int]) -> None:
    assert _run(POLICY, FLAGS, chunks)[:2] == _run(POLICY, FLAGS, [len(FLAGS)])[:2]


def test_anomalies_that_raise_no_alarm_open_no_event() -> None:
    flags = [True, False, False, False, True, False, False, False]
    ids, records, state = _run(POLICY, flags, [len(flags)])
    assert ids == [None] * len(flags)
    assert records == {}
    assert state.open is None
    assert len(state.pending) == 1  # k - 1 kept


def test_a_policy_in_seconds_closes_by_time() -> None:
    # readings 10 s apart; 2 anomalies within 25 s; the event closes 25 s after its last
    policy = AlarmPolicy(k=2, window=25, cooldown=0, unit="seconds")
    flags = [True, True, False, False, False, True]
    ids, records, _ = _run(policy, flags, [len(flags)])
    one = event_id(EPOCH, 1)
    assert ids == [None, one, one, one, None, None]
    assert records[one]["end"] == "1970-01-01T00:00:10+00:00"


def test_the_state_round_trips_through_the_stored_alarm_json() -> None:
    _, _, state = _run(POLICY, FLAGS, [len(FLAGS)])
    stored = StoredAlarm(epoch=EPOCH, events=state)
    assert StoredAlarm.from_json(stored.to_json()) == stored
    assert b'"events"' not in StoredAlarm(epoch=EPOCH).to_json()  # absent until needed


def test_an_event_keeps_each_sensors_largest_deviation_by_kind() -> None:
    """``peak_z``: the largest of each kind over the event's anomalous readings, listed with
    its top sensors; a stored state kept without deviations still reads."""
    flags = [False, True, True, False]  # the event is still open after them
    kinds = ("level", "shift")
    deviations = np.zeros((len(flags), 2, 2))
    deviations[1] = [[3.0, 0.5], [0.1, 2.0]]
    deviations[2] = [[1.0, 1.5], [0.2, 1.0]]
    deviations[3] = [[9.0, 9.0], [9.0, 9.0]]  # not anomalous: not the event's
    base = _inputs(flags)
    inputs = EventInput(
        **{name: getattr(base, name) for name in ("severities", "shares", "values", "channels")},
        low=base.low,
        high=base.high,
        kinds=kinds,
        deviations=deviations,
    )
    alarms, _ = POLICY.evaluate(AlarmState(), np.array(flags))
    state, _, written = track(
        EventTrack(),
        POLICY,
        epoch=EPOCH,
        first=0,
        flags=np.array(flags),
        alarms=alarms,
        times=np.arange(len(flags), dtype=np.float64),
        inputs=inputs,
    )
    record = json.loads(dict(written)[event_id(EPOCH, 1)])
    peaks = {s["feature"]: s["peak_z"] for s in record["top_sensors"]}
    assert peaks == {"a": {"level": 3.0, "shift": 1.5}, "b": {"level": 0.2, "shift": 2.0}}
    stored = StoredAlarm(epoch=EPOCH, events=state).to_json()
    assert StoredAlarm.from_json(stored).events == state
    data = json.loads(stored)
    del data["events"]["open"]["peak_deviation"]  # a state stored without deviations
    old = StoredAlarm.from_json(json.dumps(data).encode()).events
    assert old is not None
    assert old.open is not None
    assert old.open.peak_deviation == ()
    lone, _, _ = track(  # one anomaly, no alarm yet: pending, with its deviations
        EventTrack(),
        POLICY,
        epoch=EPOCH,
        first=10,
        flags=np.array([True]),
        alarms=np.array([False]),
        times=np.array([10.0]),
        inputs=EventInput(**{**_fields(inputs), "deviations": deviations[1:2]}),
    )
    kept = lone.to_dict()
    assert kept["pending_deviations"] == [(3.0, 0.5, 0.1, 2.0)]
    assert len(kept["pending"][0]) == 6  # six items: readable by code that knows no deviations
    assert EventTrack.from_dict(kept) == lone
    plain = _run(POLICY, FLAGS, [len(FLAGS)])[1][event_id(EPOCH, 1)]  # no deviations given
    assert all("peak_z" not in sensor for sensor in plain["top_sensors"])


def _fields(inputs: EventInput) -> dict[str, Any]:
    return {name: getattr(inputs, name) for name in EventInput.__slots__}


def test_event_ids_parse_back() -> None:
    assert parse_event_id(event_id(EPOCH, 42)) == (EPOCH[:8], 42)
    for bad in ("", "01234567", "01234567-", "0123456x-1", "01234567-1a", "0123-1"):
        assert parse_event_id(bad) is None


def test_pending_anomalies_are_dropped_once_no_alarm_can_claim_them() -> None:
    """``advance_events``: a lone anomaly is kept for ``window`` readings, then dropped, so a
    stream's stored state shrinks back to what it was."""
    from anomaly_api.service.stream_alarms import advance_events

    policy = AlarmPolicy(k=3, window=10, cooldown=0)
    stored = StoredAlarm(epoch=EPOCH)
    pending = []
    for i, flag in enumerate([True] + [False] * 10):
        flags = np.array([flag])
        _, stored, ids, written = advance_events(
            stored, policy, i, flags, np.array([10.0 * i]), inputs=lambda i=i: _inputs([True], i)
        )
        assert ids == [None]
        assert written == []
        assert stored.events is not None
        pending.append(len(stored.events.pending))
    assert pending == [1] * 10 + [0]  # reading 10 lies a window after the anomaly


_DEVIATION = st.floats(min_value=0.0, max_value=1e6, allow_nan=False) | st.sampled_from(
    [0.0, 0.004999999999999999, 0.005, 0.015, 1.005, 2.675, 472.0, float("inf")]
)


_NEAR = st.floats(min_value=-0.02, max_value=0.02) | st.sampled_from([0.0049, 0.005, 0.0051])


@given(
    st.lists(
        st.tuples(
            _DEVIATION, _DEVIATION | _DEVIATION.flatmap(lambda k: _NEAR.map(lambda d: k + d))
        ),
        min_size=4,
        max_size=4,
    ),
    st.booleans(),
)
@settings(max_examples=500, deadline=None)
def test_an_open_events_peaks_round_only_what_can_raise_them(
    pairs: list[tuple[float, float]], none_kept: bool
) -> None:
    """``EventInput.peaks`` (rounding only the deviations above the kept peaks) gives the
    element-wise maximum of the kept peaks and the reading's rounded deviations."""
    kept = () if none_kept else tuple(round(k, 2) for k, _ in pairs)
    row = np.abs(np.array([v for _, v in pairs])).reshape(1, 2, 2)
    inputs = EventInput(
        severities=np.ones(1),
        shares=np.full((1, 2), 0.5),
        values=np.zeros((1, 2)),
        channels=CHANNELS,
        low=np.zeros(2),
        high=np.ones(2),
        kinds=("level", "flat"),
        deviations=row,
    )
    expected = _larger(kept, inputs.deviation(0))
    assert inputs.peaks(0, kept) == expected
    assert [type(x) for x in inputs.peaks(0, kept)] == [float] * 4
