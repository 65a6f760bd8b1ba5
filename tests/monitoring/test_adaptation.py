"""The adaptive threshold of a stream (``monitoring/adaptation.py``): it follows a drift of
normal operation upward (never down, at most ``cap``), learns nothing from a fault (a long
fault is still flagged at its end), does not depend on how readings are batched, and
feedback widens it for readings like the labelled event's, within bounds, not for readings
carried by sensors nobody labelled, and is taken back."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.monitoring.adaptation import (
    MAX_WIDENINGS,
    AdaptationModel,
    AdaptiveState,
    adapt,
    narrow,
    widen,
)
from anomaly_api.monitoring.widening import Deviations

MODEL = AdaptationModel(reference=-1.0, spread=0.5, memory=200.0, quiet=10)


def _normal(n: int, level: float, seed: int = 0) -> np.ndarray:
    return level + 0.5 * np.random.default_rng(seed).standard_normal(n)


def _run(
    scores: np.ndarray, state: AdaptiveState | None = None
) -> tuple[np.ndarray, np.ndarray, AdaptiveState]:
    start = AdaptiveState() if state is None else state
    return adapt(MODEL, start, scores, scores > 0, np.zeros(len(scores), dtype=bool))


def test_a_drift_of_normal_operation_is_followed_and_silenced() -> None:
    n = 12000  # the level moves up by 1.2 over the first 8,000 readings, then stays
    drifted = _normal(n, level=-1.0, seed=1) + 1.2 * np.minimum(np.arange(n) / 8000, 1.0)
    flags, shifts, state = _run(drifted)
    assert (drifted[-2000:] > 0).mean() > 0.5  # the model alone flags most of the last
    assert state.level == pytest.approx(0.2, abs=0.1)
    assert state.raised_by(MODEL) == pytest.approx(1.2, abs=0.1)
    assert flags[-2000:].mean() < 0.05  # adapted: about the model's own tail again
    assert shifts[0] == 0.0
    assert shifts[-1] > 1.0


def test_the_threshold_is_never_lowered_and_its_raise_is_capped() -> None:
    _, shifts, state = _run(_normal(3000, level=-3.0))
    assert state.level is not None
    assert state.level < MODEL.reference
    assert state.shift(MODEL) == 0.0
    assert (shifts == 0.0).all()
    high = np.full(2000, 5.0)  # scores the model does not flag, far above the reference
    _, shifts, state = adapt(MODEL, AdaptiveState(), high, np.zeros(2000, bool), high < 0)
    assert state.level is not None
    assert state.level - MODEL.reference > MODEL.cap
    assert state.raised_by(MODEL) == MODEL.cap
    assert shifts.max() == MODEL.cap


def test_a_long_fault_is_never_learned_and_still_flagged_at_its_end() -> None:
    _, _, before = _run(_normal(500, level=-1.0))
    assert before.learned > 400
    fault = np.full(3000, 0.6)  # just above the threshold, for a long time
    flags, shifts, after = _run(fault, before)
    assert flags.all()
    assert flags[-1]
    assert after.level == before.level
    assert after.learned == before.learned
    assert after.frozen == before.frozen + len(fault)
    assert (shifts == before.shift(MODEL)).all()
    # the readings just after it are frozen too (quiet), then learning resumes
    calm = np.full(MODEL.quiet + 5, -1.0)
    _, _, later = _run(calm, after)
    assert later.learned == after.learned + 5
    assert later.frozen == after.frozen + MODEL.quiet


def test_a_lone_anomaly_holds_nothing() -> None:
    scores = np.array([-1.0] * 40 + [3.0] + [-1.0] * 5)
    flags, _, state = _run(scores)
    assert flags.tolist() == [False] * 40 + [True] + [False] * 5
    assert (state.learned, state.frozen, state.hold) == (45, 1, 0)


def test_warming_up_readings_keep_the_model_flag_and_teach_nothing() -> None:
    scores = np.array([0.5, -2.0, 0.5])
    flags, shifts, state = adapt(
        MODEL, AdaptiveState(level=0.0, calm=MODEL.quiet), scores, scores > 0, np.ones(3, bool)
    )
    assert flags.tolist() == [True, False, True]
    assert shifts.tolist() == [0.0, 0.0, 0.0]
    assert (state.level, state.learned, state.frozen) == (0.0, 0, 3)


@pytest.mark.parametrize("size", [1, 7, 64])
def test_the_same_readings_give_the_same_state_however_batched(size: int) -> None:
    scores = np.concatenate([_normal(700, level=-0.2, seed=3), np.full(40, 3.0)])
    warm = np.zeros(len(scores), dtype=bool)
    warm[:5] = True
    whole = adapt(MODEL, AdaptiveState(), scores, scores > 0, warm)
    state, flags, shifts = AdaptiveState(), [], []
    for start in range(0, len(scores), size):
        part = slice(start, start + size)
        f, s, state = adapt(MODEL, state, scores[part], scores[part] > 0, warm[part])
        flags.append(f)
        shifts.append(s)
    assert state == whole[2]
    assert np.concatenate(flags).tolist() == whole[0].tolist()
    assert np.concatenate(shifts).tolist() == whole[1].tolist()


def test_feedback_widens_readings_like_the_event_within_bounds_and_is_taken_back() -> None:
    top = [("a", 0.8), ("b", 0.2)]  # the event was carried by sensors a and b
    state = widen(MODEL, AdaptiveState(hold=10), "e-1", 0.4, top)  # held: no level to learn
    assert state.widening(MODEL) == pytest.approx(0.404 * 0.8 / 0.68, abs=1e-5)
    scores = np.array([0.39, 0.39, 0.5])
    shares = np.array([[0.8, 0.2, 0.0], [0.0, 0.0, 1.0], [0.8, 0.2, 0.0]])
    flags, shifts, _ = adapt(
        MODEL, state, scores, scores > 0, np.zeros(3, bool), shares=shares, channels=("a", "b", "c")
    )
    assert flags.tolist() == [False, True, True]  # like the event and below its peak: silenced
    assert shifts.tolist() == pytest.approx([0.404, 0.0, 0.404], abs=1e-5)
    assert _run(scores, state)[0].tolist() == [True, True, True]  # no shares: no raise
    state = widen(MODEL, state, "e-2", 50.0, top)  # one feedback moves it at most max_step
    assert state.widening(MODEL) == MODEL.max_step
    for i in range(3, 20):
        state = widen(MODEL, state, f"e-{i}", 5.0, top)
    assert len(state.widenings) == MAX_WIDENINGS
    undone = narrow(state, "e-19")
    assert [w.event_id for w in undone.widenings] == [f"e-{i}" for i in range(12, 19)]
    assert narrow(undone, "e-19") is undone
    small = widen(MODEL, widen(MODEL, AdaptiveState(), "a", 0.3, top), "b", 0.2, top)
    assert small.widening(MODEL) == pytest.approx(0.303 * 0.8 / 0.68, abs=1e-5)  # the largest
    assert narrow(small, "a").widening(MODEL) == pytest.approx(0.202 * 0.8 / 0.68, abs=1e-5)


def test_feedback_does_not_hide_a_fault_carried_by_unlabelled_sensors_under_a_raised_level() -> (
    None
):
    """With the level raised, a fault carried by sensors without an allowance alarms when it
    crosses the level's threshold, though a labelled sensor within its bounds carries part
    of it; a reading shaped like the labelled event, up to its peak, stays silenced; one on
    which the labelled sensor moves further than the event did alarms."""
    state = AdaptiveState(level=MODEL.reference + 0.5, hold=10)  # raised by 0.5, held
    peaks = {"a": {"residual": 4.0}}
    state = widen(MODEL, state, "e-1", 1.0, [("a", 0.8), ("b", 0.2)], peaks=peaks)
    scores = np.array([1.5, 0.7, 0.7])  # the event's peak, then two faults on sensor c
    shares = np.array([[0.8, 0.2, 0.0], [0.3, 0.0, 0.7], [0.8, 0.0, 0.2]])
    residual_of_a = np.array([4.0, 4.0, 6.0])  # as labelled, as labelled, beyond its bound
    values = np.zeros((3, 3, 1))
    values[:, 0, 0] = residual_of_a
    deviations = Deviations(("residual",), values)
    flags, shifts, _ = adapt(
        MODEL,
        state,
        scores,
        scores > 0,
        np.zeros(3, bool),
        shares=shares,
        channels=("a", "b", "c"),
        deviations=deviations,
    )
    assert flags.tolist() == [False, True, True]
    assert shifts.tolist() == pytest.approx([0.5 + 1.01, 0.5, 0.5], abs=1e-5)


def test_the_state_round_trips_and_malformed_state_is_refused() -> None:
    fresh = AdaptiveState(level=0.25, learned=3, frozen=4, calm=2)
    state = widen(MODEL, fresh, "e-1", 0.3, [("a", 0.6), ("b", 0.3)])
    assert AdaptiveState.from_dict(state.to_dict()) == state
    bad_widenings = ([["e-1"]], [["e-1", {"a": -1.0}]], [["e-1", {"a": "nan"}]])
    for bad in (
        {},
        {**state.to_dict(), "level": "x"},
        {**state.to_dict(), "learned": -1},
        *({**state.to_dict(), "widenings": w} for w in bad_widenings),
    ):
        with pytest.raises(ValueError, match="malformed adaptive state"):
            AdaptiveState.from_dict(bad)
    whole_stream = {**state.to_dict(), "widenings": [["e-0", 0.3], *state.to_dict()["widenings"]]}
    assert AdaptiveState.from_dict(whole_stream) == state  # an amount without sensors: dropped
    peaks = {"a": {"level": 2.0, "residual": 4.5}}
    bounded = widen(MODEL, fresh, "e-2", 0.3, [("a", 0.6), ("b", 0.3)], peaks=peaks)
    stored = bounded.to_dict()
    assert stored["bounds"] == {"e-2": peaks}  # beside the widenings, by event id
    assert stored["widenings"] == [["e-2", dict(bounded.widenings[0].allowances)]]
    assert AdaptiveState.from_dict(stored) == bounded
    assert "bounds" not in state.to_dict()  # nothing bounded: no bounds key


def test_the_model_of_normal_scores() -> None:
    model = AdaptationModel.from_scores(np.array([-2.0, -1.0, 0.0, np.nan]))
    assert (model.reference, model.spread) == (-1.0, pytest.approx(1.4826))
    with pytest.raises(ValueError, match="no normal scores"):
        AdaptationModel.from_scores(np.array([np.nan]))
