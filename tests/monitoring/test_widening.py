"""Feedback's per-sensor allowances (``monitoring/widening.py``): the least allowances that
raise a reading shaped like the labelled event by its peak, the largest per sensor, a
reading's raise weighted by its shares and never above the largest allowance."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.monitoring.widening import Widening, allowances, raises, widening_for


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


def test_a_widening_round_trips_and_malformed_ones_are_refused() -> None:
    widening = widening_for("e-1", 3.0, [("a", 0.9), ("b", 0.1)], max_step=2.0)
    assert widening.amount == 2.0  # capped at max_step
    assert Widening.from_json(widening.to_json()) == widening
    for bad in (["e-1", 0.3], ["e-1"], ["e-1", {"a": -0.1}], ["e-1", {"a": float("inf")}]):
        with pytest.raises(ValueError, match="malformed widening"):
            Widening.from_json(bad)
