"""Feedback's per-sensor allowances (``monitoring/widening.py``): the least allowances that
raise a reading shaped like the labelled event by its peak, the largest per sensor, a
reading's raise weighted by its shares and never above the largest allowance, each covering
only what the labelled event read on its sensor (by kind, plus the margin), and nothing for a
reading whose largest share is on a sensor without any allowance."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.monitoring.widening import (
    BOUND_MARGIN,
    Deviations,
    Widening,
    allowances,
    raises,
    read_widenings,
    widening_for,
)


def test_the_allowances_raise_a_reading_shaped_like_the_event_by_its_peak() -> None:
    top = [("temperature", 0.6), ("humidity", 0.3), ("rpm", 0.0)]
    widening = widening_for("e-1", 1.0, top, max_step=2.0)
    assert [name for name, _ in widening.allowances] == ["temperature", "humidity"]
    shaped = np.array([[0.6, 0.3, 0.1]])  # temperature, humidity, pressure
    raised = raises([widening], ("temperature", "humidity", "pressure"), shaped, 1)
    assert raised is not None
    assert raised[0] == pytest.approx(1.01, abs=1e-5)
    assert widening_for("e-2", 1.0, [("rpm", 0.0)], max_step=2.0).allowances == ()


def test_a_reading_is_raised_by_its_shares_and_never_above_the_largest_allowance() -> None:
    one = Widening("e-1", (("a", 1.5), ("b", 0.5)))
    two = Widening("e-2", (("b", 1.0),))
    assert allowances([one, two]) == {"a": 1.5, "b": 1.0}  # the largest, not the sum
    shares = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0], [2.0, 2.0, 0.0]])
    raised = raises([one, two], ("a", "b", "c"), lambda: shares, 4)
    assert raised is not None
    assert raised.tolist() == pytest.approx([1.5, 0.0, 1.25, 1.5])
    assert raises([one], ("c",), shares[:, 2:], 4) is None  # no allowance for these channels
    with pytest.raises(ValueError, match="shares of shape"):
        raises([one], ("a", "b", "c"), shares[:2], 4)


def test_a_reading_carried_by_a_sensor_without_an_allowance_is_not_raised() -> None:
    """A false alarm carried by temperature and humidity raises a fault carried by current
    and voltage nothing, even while temperature, a minority of it, deviates no more than in
    the labelled event: the part carried by sensors nobody labelled is judged at the
    level's threshold alone."""
    widening = widening_for("e-1", 1.0, [("temperature", 0.6), ("humidity", 0.3)], 2.0)
    channels = ("temperature", "humidity", "current", "voltage")
    shares = np.array(
        [
            [0.6, 0.3, 0.05, 0.05],  # shaped like the event
            [0.2, 0.0, 0.5, 0.3],  # current's fault, temperature a fifth of it
            [0.33, 0.0, 0.37, 0.3],  # current's largest share, by a little
            [0.38, 0.0, 0.37, 0.25],  # temperature's largest share, by a little
            [0.4, 0.0, 0.4, 0.2],  # a tie: the first channel in order
        ]
    )
    raised = raises([widening], channels, shares, 5)
    assert raised is not None
    temperature = dict(widening.allowances)["temperature"]
    assert raised.tolist() == pytest.approx(
        [1.01, 0.0, 0.0, 0.38 * temperature, 0.4 * temperature], abs=1e-5
    )
    other = Widening("e-2", (("current", 0.5),))  # another label on current: carried again
    both = raises([widening, other], channels, shares, 5)
    assert both is not None
    assert both[1] == pytest.approx(0.2 * temperature + 0.5 * 0.5)


def test_a_widening_round_trips_and_malformed_ones_are_refused() -> None:
    widening = widening_for("e-1", 3.0, [("a", 0.9), ("b", 0.1)], max_step=2.0)
    assert widening.amount == 2.0  # capped at max_step
    assert Widening.from_json(widening.to_json()) == widening
    for bad in (["e-1", 0.3], ["e-1"], ["e-1", {"a": -0.1}], ["e-1", {"a": float("inf")}]):
        with pytest.raises(ValueError, match="malformed widening"):
            Widening.from_json(bad)


KINDS = ("level", "shift", "residual")
PEAKS = {"temperature": {"level": 1.0, "shift": 0.5, "residual": 4.0}}


def _deviations(*rows: tuple[float, float, float]) -> Deviations:
    """Readings whose temperature deviates by ``rows`` (level, shift, residual); humidity 0."""
    values = np.zeros((len(rows), 2, len(KINDS)))
    values[:, 0, :] = rows
    return Deviations(KINDS, values)


def test_an_allowance_covers_only_what_the_labelled_event_read_on_its_sensor() -> None:
    """A false alarm whose temperature was off its relation by 4 sd says that much is
    normal, not that a level shift of temperature is: a reading beyond any of the event's
    deviations by more than the margin gets no allowance from that sensor."""
    widening = widening_for("e-1", 1.0, [("temperature", 1.0)], max_step=2.0, peaks=PEAKS)
    assert widening.bounds == (
        ("temperature", (("level", 1.0), ("shift", 0.5), ("residual", 4.0))),
    )
    channels, shares = ("temperature", "humidity"), np.array([[1.0, 0.0]] * 4)
    margin = BOUND_MARGIN - 1e-9
    readings = _deviations(
        (1.0, 0.5, 4.0),  # what the event read
        (1.0 + margin, 0.5 + margin, 4.0 + margin),  # within the margin
        (1.0, 0.5, 4.0 + BOUND_MARGIN + 0.1),  # its relation further off than labelled
        (3.0, 2.5, 1.0),  # a level shift on the same sensor, relation within
    )
    raised = raises([widening], channels, shares, 4, readings)
    assert raised is not None
    assert raised.tolist() == pytest.approx([1.01, 1.01, 0.0, 0.0], abs=1e-5)
    unbounded = Widening("e-2", widening.allowances)  # no bounds: any size is covered
    both = raises([widening, unbounded], channels, shares, 4, readings)
    assert both is not None
    assert both.tolist() == pytest.approx([1.01] * 4, abs=1e-5)
    without = raises([widening], channels, shares, 4)  # no deviations to compare
    assert without is not None
    assert without.tolist() == pytest.approx([1.01] * 4, abs=1e-5)
    with pytest.raises(ValueError, match="deviations of shape"):
        raises([widening], channels, shares, 4, _deviations((0.0, 0.0, 0.0)))


def test_bounds_round_trip_and_a_widening_stored_without_them_still_reads() -> None:
    """The bounds are stored beside the widening (``[event id, {sensor: allowance}]``), so a
    state with them stays readable by code that knows none."""
    top = [("temperature", 0.8), ("humidity", 0.2)]
    widening = widening_for("e-1", 1.0, top, 2.0, peaks=PEAKS)
    assert widening.to_json() == ["e-1", dict(widening.allowances)]
    assert widening.bounds_json() == {"temperature": PEAKS["temperature"]}  # humidity: none
    stored = read_widenings([widening.to_json()], {"e-1": widening.bounds_json()})
    assert stored == (widening,)
    old = read_widenings([["e-1", {"temperature": 1.0}], ["e-0", 0.4]])  # no bounds kept
    assert [(w.allowances, w.bounds) for w in old] == [((("temperature", 1.0),), ())]
    for bad in ({"e-1": {"a": {"level": -1.0}}}, {"e-1": {"a": 2.0}}, {"e-1": [1.0]}, [1.0]):
        with pytest.raises(ValueError, match="malformed widening"):
            read_widenings([["e-1", {"a": 1.0}]], bad)
