"""Readings of a window put in time order: repeats merged, a clock stepping back skipped."""

from __future__ import annotations

import numpy as np

from anomaly_api.service.stream_timestamps import tidy


def test_in_order_readings_are_kept_as_they_are() -> None:
    ts = np.array([1.0, 2.0, 5.0])
    values = np.arange(6.0).reshape(3, 2)
    tidied = tidy(ts, values)
    assert tidied.timestamps is ts
    assert tidied.values is values
    assert tidied.kept.tolist() == [0, 1, 2]
    assert (tidied.merged, tidied.skipped) == (0, 0)


def test_repeats_are_averaged_and_step_backs_skipped() -> None:
    ts = np.array([1.0, 2.0, 2.0, 2.0, 0.5, 1.5, 3.0, 3.0, 4.0])
    values = np.arange(18.0).reshape(9, 2)
    tidied = tidy(ts, values)
    assert tidied.timestamps.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert tidied.kept.tolist() == [0, 1, 6, 8]
    assert (tidied.merged, tidied.skipped) == (3, 2)
    expected = [values[0], values[1:4].mean(0), values[6:8].mean(0), values[8]]
    assert np.array_equal(tidied.values, np.array(expected))
    assert np.all(np.diff(tidied.timestamps) > 0)
