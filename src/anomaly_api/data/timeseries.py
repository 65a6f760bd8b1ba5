"""Time-series input: parse timestamps, check their order per stream, mark gaps.

A time-aware model computes each reading's features from the readings before it in
the same stream, so training needs rows that are in time order within each stream.
Every problem stops training with one ``DataError`` naming the (0-based data) row:

* a timestamp that cannot be parsed (or is missing);
* a timestamp equal to the previous one of its stream (a duplicate);
* a timestamp before the previous one of its stream (out of order).

Rows of different streams may be interleaved. A gap longer than ``max_gap_factor``
times the median interval (over all streams) starts a new *segment*: windows never
reach across a gap, as if the stream had started again.

Timestamps become float seconds since the Unix epoch (UTC; naive times are taken as
UTC), the unit the detection layer uses, so that serving needs no pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from anomaly_api.data.errors import DataError
from anomaly_api.data.loading import Dataset, dataset_from_frame

DEFAULT_MAX_GAP_FACTOR: Final = 3.0


@dataclass(frozen=True)
class TimeSeriesDataset:
    """Readings in time order per stream, with the segment (window restart) of each row."""

    data: Dataset
    """Features, labels and kinds, one row per reading, in the file's row order."""
    timestamps: NDArray[np.float64]
    """Seconds since the Unix epoch (UTC)."""
    streams: NDArray[np.str_]
    """Stream id of each row (one stream, ``""``, without a stream column)."""
    segments: NDArray[np.int64]
    """Segment id of each row: a new id at each stream's first row and after each long gap."""
    median_interval: float
    """Median time between consecutive readings of a stream, in seconds."""
    max_gap_factor: float
    timestamp_column: str
    stream_column: str | None

    @property
    def n_segments(self) -> int:
        """Number of segments (stream starts plus restarts after gaps)."""
        return len(np.unique(self.segments))


def parse_timestamps(values: pd.Series, column: str) -> NDArray[np.float64]:
    """Seconds since the epoch; the first row that cannot be parsed raises ``DataError``."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        # Numbers are seconds since the epoch.
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if len(bad):
            row = int(bad[0])
            raise DataError(f"row {row}: timestamp column {column!r} has no valid value")
        return numbers
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"row {row}: timestamp {values.iloc[row]!r} in column {column!r} cannot be parsed"
        )
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return np.asarray(seconds, dtype=np.float64)


def check_order(timestamps: NDArray[np.float64], streams: NDArray[np.str_], raw: pd.Series) -> None:
    """Raise ``DataError`` at the first duplicate or out-of-order timestamp of a stream."""
    order = np.lexsort((np.arange(len(timestamps)), streams))  # by stream, then row
    same_stream = streams[order][1:] == streams[order][:-1]
    step = np.diff(timestamps[order])
    bad = np.flatnonzero(same_stream & (step <= 0))
    if not len(bad):
        return
    # The first offending row in file order, not in stream order.
    rows = order[bad + 1]
    previous = order[bad]
    first = int(np.argmin(rows))
    row, prev = int(rows[first]), int(previous[first])
    where = f" of stream {str(streams[row])!r}" if streams[row] else ""
    what = "duplicates" if step[bad[first]] == 0 else "is earlier than"
    raise DataError(
        f"row {row}: timestamp {raw.iloc[row]!r}{where} {what} row {prev}'s "
        f"({raw.iloc[prev]!r}); rows must be in time order per stream, without duplicates"
    )


def segment_ids(
    timestamps: NDArray[np.float64], streams: NDArray[np.str_], max_gap_factor: float
) -> tuple[NDArray[np.int64], float]:
    """Segment id of each row and the median interval (rows must be in order per stream)."""
    order = np.lexsort((np.arange(len(timestamps)), streams))
    same_stream = np.concatenate([[False], streams[order][1:] == streams[order][:-1]])
    steps = np.diff(timestamps[order], prepend=np.nan)
    intervals = steps[same_stream]
    if len(intervals) == 0:
        raise DataError("need at least two readings in one stream to learn the interval")
    median = float(np.median(intervals))
    new_segment = ~same_stream | (steps > max_gap_factor * median)
    ids_sorted = np.cumsum(new_segment) - 1
    ids = np.empty(len(timestamps), dtype=np.int64)
    ids[order] = ids_sorted
    return ids, median


def timeseries_from_frame(
    frame: pd.DataFrame,
    *,
    source: str,
    timestamp_column: str,
    stream_column: str | None = None,
    max_gap_factor: float = DEFAULT_MAX_GAP_FACTOR,
    features: list[str] | None = None,
    label_column: str | None = None,
) -> TimeSeriesDataset:
    """Validate a frame of time series readings (see the module docstring)."""
    if not max_gap_factor > 1.0:
        raise DataError(f"the maximum gap factor must be above 1, got {max_gap_factor:g}")
    columns = [str(c) for c in frame.columns]
    for role, name in (("timestamp", timestamp_column), ("stream", stream_column)):
        if name is not None and name not in columns:
            raise DataError(f"{role} column {name!r} not found; columns are {columns}")
    frame = frame.reset_index(drop=True)
    raw = frame[timestamp_column]
    timestamps = parse_timestamps(raw, timestamp_column)
    if stream_column is None:
        streams = np.full(len(frame), "", dtype=np.str_)
    else:
        ids = frame[stream_column]
        missing = np.flatnonzero(ids.isna().to_numpy())
        if len(missing):
            raise DataError(f"row {int(missing[0])}: stream column {stream_column!r} is empty")
        streams = ids.astype(str).to_numpy(dtype=np.str_)
    check_order(timestamps, streams, raw)
    segments, median = segment_ids(timestamps, streams, max_gap_factor)
    reserved = [c for c in (timestamp_column, stream_column) if c is not None]
    if features is not None:
        clash = [c for c in reserved if c in features]
        if clash:
            raise DataError(f"column {clash[0]!r} is a timestamp/stream column, not a feature")
        chosen = features
    else:
        chosen = None
    rest = frame.drop(columns=reserved)
    data = dataset_from_frame(rest, source=source, features=chosen, label_column=label_column)
    return TimeSeriesDataset(
        data=data,
        timestamps=timestamps,
        streams=streams,
        segments=segments,
        median_interval=median,
        max_gap_factor=max_gap_factor,
        timestamp_column=timestamp_column,
        stream_column=stream_column,
    )


def load_timeseries(
    path: object,
    *,
    timestamp_column: str,
    stream_column: str | None = None,
    max_gap_factor: float = DEFAULT_MAX_GAP_FACTOR,
    features: list[str] | None = None,
    label_column: str | None = None,
) -> TimeSeriesDataset:
    """Read a CSV/Parquet file of time series readings and validate it."""
    from pathlib import Path

    from anomaly_api.data.loading import read_table

    file = Path(str(path))
    return timeseries_from_frame(
        read_table(file),
        source=str(file),
        timestamp_column=timestamp_column,
        stream_column=stream_column,
        max_gap_factor=max_gap_factor,
        features=features,
        label_column=label_column,
    )


def synthetic_timeseries(
    seed: int = 42, n_rows: int = 10_000, max_gap_factor: float = DEFAULT_MAX_GAP_FACTOR
) -> TimeSeriesDataset:
    """The embedded synthetic sensor data (one 5-minute stream) as a time series."""
    from anomaly_api.data.synthetic import SENSOR_CHANNELS, TIMESTAMP_COLUMN, generate_sensor_data

    frame = generate_sensor_data(n_rows, seed=seed)
    return timeseries_from_frame(
        frame,
        source=f"synthetic(rows={n_rows}, seed={seed})",
        timestamp_column=TIMESTAMP_COLUMN,
        max_gap_factor=max_gap_factor,
        features=list(SENSOR_CHANNELS),
    )
