"""Time series input: timestamp parsing, order per stream, gaps and segments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anomaly_api.data.errors import DataError
from anomaly_api.data.timeseries import synthetic_timeseries, timeseries_from_frame


def _frame(n: int = 80, stream: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "ts": pd.date_range("2026-01-01", periods=n, freq="1min").astype(str),
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
        }
    )
    if stream:
        frame["id"] = np.where(np.arange(n) % 2 == 0, "pump-1", "pump-2")
    return frame


def test_parses_and_records_the_median_interval() -> None:
    ts = timeseries_from_frame(_frame(), source="t", timestamp_column="ts")
    assert ts.median_interval == 60.0
    assert ts.data.feature_names == ["a", "b"]
    assert ts.n_segments == 1
    assert ts.timestamps[1] - ts.timestamps[0] == 60.0


def test_unparsable_timestamp_names_the_row() -> None:
    frame = _frame()
    frame.loc[17, "ts"] = "not a time"
    with pytest.raises(DataError, match=r"^row 17: timestamp 'not a time' in column 'ts'"):
        timeseries_from_frame(frame, source="t", timestamp_column="ts")


def test_repeated_timestamps_are_merged_and_counted() -> None:
    frame = _frame()
    frame.loc[30, "ts"] = frame.loc[29, "ts"]
    frame.loc[31, "ts"] = frame.loc[29, "ts"]
    ts = timeseries_from_frame(frame, source="t", timestamp_column="ts")
    assert ts.data.n_rows == len(frame) - 2
    assert ts.merged_repeats == 2
    # one reading at row 29's time: the mean of the three
    expected = frame.loc[29:31, ["a", "b"]].to_numpy().mean(axis=0)
    assert np.allclose(ts.data.X[29], expected)
    assert np.allclose(ts.data.X[30], frame.loc[32, ["a", "b"]].to_numpy(np.float64))
    assert ts.input_report()["merged_repeated_timestamps"] == 2


def test_a_merged_reading_is_anomalous_if_any_was() -> None:
    frame = _frame()
    frame["is_anomaly"] = 0
    frame.loc[[5, 6, 7, 8, 9, 31], "is_anomaly"] = 1
    frame.loc[31, "ts"] = frame.loc[30, "ts"]
    ts = timeseries_from_frame(frame, source="t", timestamp_column="ts")
    assert ts.data.y is not None
    assert ts.data.y[30] == 1
    assert int(ts.data.y.sum()) == 6


def test_a_clock_stepping_back_is_skipped_and_counted() -> None:
    frame = _frame()
    frame.loc[40, "ts"] = "2025-12-31 00:00:00"
    ts = timeseries_from_frame(frame, source="t", timestamp_column="ts")
    assert ts.skipped_back == 1
    assert ts.data.n_rows == len(frame) - 1
    assert np.all(np.diff(ts.timestamps) > 0)
    assert ts.input_report()["skipped_clock_steps_back"] == 1


def test_a_file_out_of_time_order_is_still_refused() -> None:
    frame = _frame().iloc[::-1].reset_index(drop=True)
    with pytest.raises(DataError, match=r"^row 1: timestamp .* is earlier than .* sort the file"):
        timeseries_from_frame(frame, source="t", timestamp_column="ts")


def test_order_is_checked_per_stream() -> None:
    frame = _frame(stream=True)
    # the two streams share timestamps pairwise: fine per stream
    frame["ts"] = np.repeat(pd.date_range("2026-01-01", periods=40, freq="1min").astype(str), 2)
    ts = timeseries_from_frame(frame, source="t", timestamp_column="ts", stream_column="id")
    assert ts.n_segments == 2
    assert ts.median_interval == 60.0
    assert ts.merged_repeats == 0
    frame.loc[11, "ts"] = frame.loc[9, "ts"]  # row 11 (pump-2) repeats row 9's time
    merged = timeseries_from_frame(frame, source="t", timestamp_column="ts", stream_column="id")
    assert merged.merged_repeats == 1
    assert (merged.streams == "pump-2").sum() == 39
    assert (merged.streams == "pump-1").sum() == 40


def test_irregular_sampling_raises_the_gap_factor() -> None:
    rng = np.random.default_rng(0)
    steps = np.where(rng.random(400) < 0.2, 600.0, 60.0)  # a fifth of intervals 10x longer
    frame = pd.DataFrame(
        {
            "ts": np.concatenate([[0.0], np.cumsum(steps)]) + 1.7e9,
            "a": rng.normal(size=401),
            "b": rng.normal(size=401),
        }
    )
    ts = timeseries_from_frame(frame, source="t", timestamp_column="ts")
    assert ts.irregular
    assert ts.max_gap_factor == pytest.approx(10.0)
    assert ts.n_segments == 1  # a fifth of intervals are the sampling, not gaps
    regular = frame.copy()
    regular["ts"] = 1.7e9 + 60.0 * np.arange(401)
    regular.loc[200:, "ts"] += 3600.0
    plain = timeseries_from_frame(regular, source="t", timestamp_column="ts")
    assert not plain.irregular
    assert plain.max_gap_factor == 3.0
    assert plain.n_segments == 2


def test_long_gap_starts_a_new_segment() -> None:
    frame = _frame()
    times = pd.to_datetime(frame["ts"])
    times[50:] = times[50:] + pd.Timedelta(minutes=10)  # a gap of 11 median intervals
    frame["ts"] = times.astype(str)
    ts = timeseries_from_frame(frame, source="t", timestamp_column="ts", max_gap_factor=5.0)
    assert ts.segments[49] != ts.segments[50]
    assert len(set(ts.segments[:50].tolist())) == 1
    assert len(set(ts.segments[50:].tolist())) == 1
    # a gap shorter than the factor allows keeps the segment
    wide = timeseries_from_frame(frame, source="t", timestamp_column="ts", max_gap_factor=20.0)
    assert wide.n_segments == 1


def test_missing_columns_are_named() -> None:
    with pytest.raises(DataError, match="timestamp column 'time' not found"):
        timeseries_from_frame(_frame(), source="t", timestamp_column="time")
    with pytest.raises(DataError, match="stream column 'id' not found"):
        timeseries_from_frame(_frame(), source="t", timestamp_column="ts", stream_column="id")


def test_synthetic_series_is_one_five_minute_stream() -> None:
    ts = synthetic_timeseries(seed=0, n_rows=500)
    assert ts.median_interval == 300.0
    assert ts.n_segments == 1
    assert ts.data.y is not None
    assert ts.data.kinds is not None
