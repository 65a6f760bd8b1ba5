"""Alarm policies: k anomalies within a window, cool-down, batches, state round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anomaly_api.monitoring.alarms import SERVICE_STREAM, AlarmPolicy, AlarmState, AlarmTracker


def reference_alarms(policy: AlarmPolicy, flags: list[bool], times: list[float]) -> list[bool]:
    """The rule written reading by reading, as the docs state it."""
    anomalies: list[float] = []
    last: float | None = None
    out = []
    for flag, t in zip(flags, times, strict=True):
        alarm = False
        if flag:
            anomalies.append(t)
            enough = len(anomalies) >= policy.k and t - anomalies[-policy.k] < policy.window
            cooled = last is None or t > last + policy.cooldown
            if enough and cooled:
                alarm, last = True, t
        out.append(alarm)
    return out


def test_three_of_five_then_cooldown() -> None:
    policy = AlarmPolicy(k=3, window=5, cooldown=4)
    flags = np.array([1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 0, 1], dtype=bool)
    alarms, state = policy.evaluate(AlarmState(), flags)
    # readings 0, 2, 4 are 3 anomalies spanning 4 < 5 readings -> alarm at 4;
    # suppressed through reading 8; next candidate 9.
    assert np.flatnonzero(alarms).tolist() == [4, 9]
    assert state.seen == 12
    assert state.alarms == 2
    assert state.last_alarm == 9
    assert state.recent == (9.0, 11.0)


def test_anomalies_too_far_apart_never_alarm() -> None:
    policy = AlarmPolicy(k=2, window=3, cooldown=0)
    flags = np.zeros(30, dtype=bool)
    flags[::3] = True  # gaps of 3 readings: span 3, not < 3
    alarms, _ = policy.evaluate(AlarmState(), flags)
    assert not alarms.any()


def test_every_anomaly_alarms_with_k1_and_no_cooldown() -> None:
    policy = AlarmPolicy(k=1, window=1, cooldown=0)
    flags = np.array([0, 1, 1, 0, 1], dtype=bool)
    alarms, _ = policy.evaluate(AlarmState(), flags)
    np.testing.assert_array_equal(alarms, flags)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    "policy",
    [
        AlarmPolicy(k=3, window=10, cooldown=20),
        AlarmPolicy(k=1, window=1, cooldown=0),
        AlarmPolicy(k=2, window=4, cooldown=0),
        AlarmPolicy(k=5, window=8, cooldown=3),
    ],
)
def test_batches_give_the_same_alarms_as_one_pass_and_as_the_reference(
    policy: AlarmPolicy, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    flags = rng.uniform(size=500) < 0.15
    flags[200:230] = True
    whole, _ = policy.evaluate(AlarmState(), flags)
    assert whole.tolist() == reference_alarms(policy, flags.tolist(), list(range(500)))
    state, parts = AlarmState(), []
    cuts = np.sort(rng.choice(np.arange(1, 500), size=12, replace=False))
    for chunk in np.split(flags, cuts):
        alarms, state = policy.evaluate(state, chunk)
        parts.append(alarms)
        state = AlarmState.from_dict(json.loads(json.dumps(state.to_dict())))
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert len(state.recent) <= policy.k - 1


@pytest.mark.parametrize("seed", range(3))
def test_seconds_policy_matches_the_reference_with_irregular_times(seed: int) -> None:
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(10.0, size=400)) + 1.7e9
    times[50] = times[49]  # two readings at the same second
    flags = rng.uniform(size=400) < 0.2
    policy = AlarmPolicy(k=3, window=60.0, cooldown=300.0, unit="seconds")
    state, parts = AlarmState(), []
    for chunk in np.array_split(np.arange(400), 7):
        alarms, state = policy.evaluate(state, flags[chunk], times[chunk])
        parts.append(alarms)
    got = np.concatenate(parts).tolist()
    assert got == reference_alarms(policy, flags.tolist(), times.tolist())
    assert sum(got) == state.alarms > 0


def test_tracker_keeps_streams_and_the_service_apart() -> None:
    tracker = AlarmTracker(AlarmPolicy(k=2, window=3, cooldown=10))
    assert tracker.observe("pump-1", np.array([True])).tolist() == [False]
    assert tracker.observe("pump-2", np.array([True])).tolist() == [False]
    assert tracker.observe("pump-1", np.array([True])).tolist() == [True]
    assert tracker.observe(SERVICE_STREAM, np.array([True, True])).tolist() == [False, True]
    assert tracker.state("pump-2").seen == 1
    assert tracker.state("never-seen") == AlarmState()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be a positive integer"),
        ({"k": 2.5}, "k must be a positive integer"),
        ({"k": True}, "k must be a positive integer"),
        ({"window": 0}, "window must be a positive number"),
        ({"window": float("inf")}, "window must be a positive number"),
        ({"cooldown": -1}, "cooldown must be a non-negative number"),
        ({"cooldown": float("nan")}, "cooldown must be a non-negative number"),
        ({"unit": "minutes"}, "unit must be"),
        ({"k": 5, "window": 4}, "cannot fit"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlarmPolicy(**kwargs)  # type: ignore[arg-type]


def test_bad_batches_are_refused() -> None:
    readings = AlarmPolicy()
    seconds = AlarmPolicy(unit="seconds", window=60)
    with pytest.raises(ValueError, match="1-D array of booleans"):
        readings.evaluate(AlarmState(), np.array([1, 0]))
    with pytest.raises(ValueError, match="1-D array of booleans"):
        readings.evaluate(AlarmState(), np.zeros((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="only used by a policy in seconds"):
        readings.evaluate(AlarmState(), np.array([True]), [1.0])
    with pytest.raises(ValueError, match="needs the readings' times"):
        seconds.evaluate(AlarmState(), np.array([True]))
    with pytest.raises(ValueError, match="one value per reading"):
        seconds.evaluate(AlarmState(), np.array([True, False]), [1.0])
    with pytest.raises(ValueError, match="non-finite"):
        seconds.evaluate(AlarmState(), np.array([True]), [float("nan")])
    with pytest.raises(ValueError, match="backwards"):
        seconds.evaluate(AlarmState(), np.array([True, True]), [2.0, 1.0])
    with pytest.raises(ValueError, match="backwards"):
        seconds.evaluate(AlarmState(recent=(10.0,)), np.array([True]), [5.0])


@pytest.mark.parametrize(
    "data",
    [
        {"recent": [1.0]},
        {"recent": "x", "last_alarm": None, "seen": 0, "alarms": 0},
        {"recent": [float("inf")], "last_alarm": None, "seen": 0, "alarms": 0},
        {"recent": [], "last_alarm": None, "seen": -1, "alarms": 0},
    ],
)
def test_malformed_state_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="malformed alarm state"):
        AlarmState.from_dict(data)


def test_empty_batch_changes_nothing_but_is_valid() -> None:
    alarms, state = AlarmPolicy().evaluate(AlarmState(), np.array([], dtype=bool))
    assert alarms.shape == (0,)
    assert state == AlarmState()


@pytest.mark.parametrize("unit", ["readings", "seconds"])
def test_small_batches_give_the_one_pass_alarms_and_state(unit: str) -> None:
    """A stream's batches of one to a few readings (plain Python) and one batch of 500
    (NumPy) give the same alarms and the same state, positions included."""
    rng = np.random.default_rng(5)
    flags = rng.uniform(size=500) < 0.3
    times = np.cumsum(rng.exponential(10.0, size=500)) + 1.7e9
    policy = AlarmPolicy(k=3, window=8 if unit == "readings" else 60.0, cooldown=5, unit=unit)
    seconds = unit == "seconds"
    whole, end = policy.evaluate(AlarmState(seen=3), flags, times if seconds else None)
    state, parts, at = AlarmState(seen=3), [], 0
    while at < 500:
        size = int(rng.integers(1, 5))
        chunk = slice(at, at + size)
        alarms, state = policy.evaluate(state, flags[chunk], times[chunk] if seconds else None)
        parts.append(alarms)
        at += size
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert state == end
    assert end.alarms > 0
    positions = times if seconds else np.arange(3, 503, dtype=np.float64)
    assert end.recent == tuple(positions[flags][-2:].tolist())
