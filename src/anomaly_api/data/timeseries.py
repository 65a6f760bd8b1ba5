"""Time-series input: parse timestamps, put readings in order per stream, mark gaps.

A time-aware model computes each reading's features from the readings before it in
the same stream, so training needs rows that are in time order within each stream.
Real data comes as it comes; each irregularity has one policy (docs/time-aware.md):

* a timestamp that cannot be parsed (or is missing) stops training with one
  ``DataError`` naming the (0-based data) row;
* a repeated timestamp (equal to the previous one of its stream) is *merged*: one
  reading, the mean of the repeated ones (a label is anomalous if any was), counted;
* a clock stepping back (a timestamp before the latest one of its stream) is *skipped*
  until the clock is past that latest time again, and counted; when more than 5% of a
  stream's rows step back, the file is not in time order and training stops with one
  ``DataError`` naming the first such row;
* a gap longer than ``max_gap_factor`` times the median interval (over all streams)
  starts a new *segment*: windows never reach across a gap, as if the stream had started
  again;
* irregular sampling (more than 5% of the intervals would be gaps) raises the gap factor
  so that only the longest 1% of intervals are gaps: otherwise few windows would ever be
  full. The factor used is the dataset's (and the model's) ``max_gap_factor``.

Rows of different streams may be interleaved. Timestamps become float seconds since the
Unix epoch (UTC; naive times are taken as UTC), the unit the detection layer uses, so
that serving needs no pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from anomaly_api.data.errors import DataError
from anomaly_api.data.loading import Dataset, dataset_from_frame
from anomaly_api.data.synthetic import LABEL_COLUMN

DEFAULT_MAX_GAP_FACTOR: Final = 3.0
UNSORTED_SHARE: Final = 0.05
"""More than this share of a stream's rows stepping back: the file is not in time order."""
IRREGULAR_SHARE: Final = 0.05
"""More than this share of intervals being gaps: the sampling is irregular."""
IRREGULAR_GAP_QUANTILE: Final = 99.0
"""With irregular sampling, only intervals above this percentile are gaps."""


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
    merged_repeats: int = 0
    """Rows merged into the reading before them (same stream, same timestamp)."""
    skipped_back: int = 0
    """Rows skipped because their clock stepped back."""
    irregular: bool = False
    """Whether the gap factor was raised for irregular sampling."""

    def input_report(self) -> dict[str, object]:
        """What the input policies did (the manifest's ``metrics.input``)."""
        return {
            "readings": self.data.n_rows,
            "segments": self.n_segments,
            "median_interval_seconds": self.median_interval,
            "max_gap_factor": self.max_gap_factor,
            "irregular_sampling": self.irregular,
            "merged_repeated_timestamps": self.merged_repeats,
            "skipped_clock_steps_back": self.skipped_back,
        }

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


def _by_stream(streams: NDArray[np.str_]) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """Row order by stream, then file row; and whether each sorted row continues the
    stream of the one before it."""
    order = np.lexsort((np.arange(len(streams)), streams))
    same = np.concatenate([[False], streams[order][1:] == streams[order][:-1]])
    return order, same


def stepping_back(
    timestamps: NDArray[np.float64], streams: NDArray[np.str_], raw: pd.Series
) -> NDArray[np.bool_]:
    """Rows whose timestamp is before the latest earlier one of their stream (a clock
    stepping back); ``DataError`` when more than ``UNSORTED_SHARE`` of a stream's rows are."""
    order, same = _by_stream(streams)
    sorted_ts = timestamps[order]
    starts = np.flatnonzero(~same)
    latest = np.empty_like(sorted_ts)
    for a, b in zip(starts, np.append(starts[1:], len(order)), strict=True):
        latest[a:b] = np.maximum.accumulate(sorted_ts[a:b])
    previous = np.concatenate([[-np.inf], latest[:-1]])
    back_sorted = same & (sorted_ts < previous)
    back = np.zeros(len(timestamps), dtype=np.bool_)
    back[order] = back_sorted
    for stream in np.unique(streams[back]):
        rows = streams == stream
        if back[rows].mean() > UNSORTED_SHARE:
            row = int(np.flatnonzero(back & rows)[0])
            where = f" of stream {str(stream)!r}" if stream else ""
            raise DataError(
                f"row {row}: timestamp {raw.iloc[row]!r}{where} is earlier than a row before "
                f"it, as are {int(back[rows].sum())} of the stream's {int(rows.sum())} rows: "
                f"more than a clock stepping back ({UNSORTED_SHARE:.0%}); sort the file by time"
            )
    return back


def merge_repeats(
    frame: pd.DataFrame,
    timestamps: NDArray[np.float64],
    streams: NDArray[np.str_],
    label_column: str | None,
) -> tuple[pd.DataFrame, NDArray[np.float64], NDArray[np.str_], int]:
    """One row per (stream, timestamp): numeric columns averaged, the label the largest
    (anomalous if any was), other columns the first; and how many rows were merged."""
    keys = pd.DataFrame({"stream": streams, "ts": timestamps})
    repeated = keys.duplicated()
    if not repeated.any():
        return frame, timestamps, streams, 0
    group = keys.groupby(["stream", "ts"], sort=False).ngroup().to_numpy()
    numeric = [
        c
        for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    how = {c: ("mean" if c in numeric else "first") for c in frame.columns}
    if label_column is not None and label_column in how:
        how[label_column] = "max"
    merged = frame.groupby(group, sort=True).agg(how).reset_index(drop=True)
    first = ~repeated.to_numpy()
    return merged[list(frame.columns)], timestamps[first], streams[first], int(repeated.sum())


def segment_ids(
    timestamps: NDArray[np.float64], streams: NDArray[np.str_], max_gap_factor: float
) -> tuple[NDArray[np.int64], float, float]:
    """Segment id of each row, the median interval and the gap factor used (raised for
    irregular sampling; rows must be in order per stream, without repeats)."""
    order, same_stream = _by_stream(streams)
    steps = np.diff(timestamps[order], prepend=np.nan)
    intervals = steps[same_stream]
    if len(intervals) == 0:
        raise DataError("need at least two readings in one stream to learn the interval")
    median = float(np.median(intervals))
    factor = max_gap_factor
    if np.mean(intervals > factor * median) > IRREGULAR_SHARE:
        factor = max(factor, float(np.percentile(intervals, IRREGULAR_GAP_QUANTILE)) / median)
    new_segment = ~same_stream | (steps > factor * median)
    ids_sorted = np.cumsum(new_segment) - 1
    ids = np.empty(len(timestamps), dtype=np.int64)
    ids[order] = ids_sorted
    return ids, median, factor


def time_and_stream(
    frame: pd.DataFrame, *, timestamp_column: str, stream_column: str | None
) -> tuple[pd.DataFrame, pd.Series, NDArray[np.float64], NDArray[np.str_]]:
    """The frame (index 0..n-1), its timestamp column as read, the timestamps in epoch
    seconds and each row's stream id (``""`` without a stream column); ``DataError`` names
    a missing column, a timestamp that cannot be read or an empty stream id."""
    columns = [str(c) for c in frame.columns]
    for role, name in (("timestamp", timestamp_column), ("stream", stream_column)):
        if name is not None and name not in columns:
            raise DataError(f"{role} column {name!r} not found; columns are {columns}")
    frame = frame.reset_index(drop=True)
    raw = frame[timestamp_column]
    timestamps = parse_timestamps(raw, timestamp_column)
    if stream_column is None:
        return frame, raw, timestamps, np.full(len(frame), "", dtype=np.str_)
    ids = frame[stream_column]
    missing = np.flatnonzero(ids.isna().to_numpy())
    if len(missing):
        raise DataError(f"row {int(missing[0])}: stream column {stream_column!r} is empty")
    return frame, raw, timestamps, ids.astype(str).to_numpy(dtype=np.str_)


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
    frame, raw, timestamps, streams = time_and_stream(
        frame, timestamp_column=timestamp_column, stream_column=stream_column
    )
    back = stepping_back(timestamps, streams, raw)
    if back.any():
        keep = ~back
        frame = frame[keep].reset_index(drop=True)
        timestamps, streams = timestamps[keep], streams[keep]
    label = label_column or (LABEL_COLUMN if LABEL_COLUMN in frame.columns else None)
    frame, timestamps, streams, merged = merge_repeats(frame, timestamps, streams, label)
    segments, median, factor = segment_ids(timestamps, streams, max_gap_factor)
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
        max_gap_factor=factor,
        timestamp_column=timestamp_column,
        stream_column=stream_column,
        merged_repeats=merged,
        skipped_back=int(back.sum()),
        irregular=factor > max_gap_factor,
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
