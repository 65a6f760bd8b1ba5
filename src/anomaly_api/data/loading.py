"""Read a user's CSV/Parquet file into a validated ``Dataset``.

Every problem a user can fix (a missing file, a missing or non-numeric column, missing
values, too few rows) raises ``DataError`` with a one-line message naming the column,
which the CLI prints without a traceback. A constant column is kept: training floors its
spread and warns (``detection.scaling.spread_floor``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from anomaly_api.data.errors import DataError
from anomaly_api.data.synthetic import (
    KIND_COLUMN,
    LABEL_COLUMN,
    SENSOR_CHANNELS,
    TIMESTAMP_COLUMN,
    generate_sensor_data,
)

MIN_ROWS: Final = 50
"""Fewest rows accepted: the LOF needs 20 neighbours within the fitting split."""
MIN_LABELLED_ANOMALIES: Final = 5
"""Fewest anomalous rows for a stratified train/validation/test split."""
_SUFFIXES: Final = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class Dataset:
    """Feature matrix with optional labels and anomaly kinds."""

    X: NDArray[np.float64]
    feature_names: list[str]
    y: NDArray[np.int64] | None
    kinds: NDArray[np.str_] | None
    source: str

    @property
    def n_rows(self) -> int:
        """Number of readings."""
        return int(self.X.shape[0])


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, chosen by its suffix."""
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be read: {first_line}") from exc


def read_columns(path: Path) -> list[str]:
    """The column names of a CSV (its header row) or Parquet file (its schema), without
    reading the rows: what a request can be checked against at once."""
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise DataError(f"{path.name}: unsupported file type {suffix!r}; use .csv or .parquet")
    try:
        if suffix == ".csv":
            return [str(name) for name in pd.read_csv(path, nrows=0).columns]
        import pyarrow.parquet as pq

        return [str(name) for name in pq.read_schema(path).names]
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path.name}: cannot be read: {first_line}") from exc


def resolve_under(root: Path, relative: str) -> Path:
    """The file ``relative`` names inside ``root``, after every symlink is followed;
    ``DataError`` when it is not a CSV/Parquet file there (no path leaves ``root``)."""
    base = root.resolve()
    try:
        path = (base / relative).resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # missing, or a symlink loop
        raise DataError(f"no such file {relative!r} in the training data directory") from exc
    if not path.is_relative_to(base):
        raise DataError(f"{relative!r} is outside the training data directory")
    if not path.is_file():
        raise DataError(f"{relative!r} is not a file")
    if path.suffix.lower() not in _SUFFIXES:
        raise DataError(f"{relative!r}: unsupported file type; use .csv or .parquet")
    return path


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV or Parquet file, chosen by its suffix."""
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def _labels(frame: pd.DataFrame, column: str) -> NDArray[np.int64]:
    series = frame[column]
    if series.isna().any():
        raise DataError(f"label column {column!r} has {int(series.isna().sum())} missing values")
    if series.dtype == bool:
        return series.to_numpy(dtype=np.int64)
    if not pd.api.types.is_numeric_dtype(series) or not series.isin([0, 1]).all():
        raise DataError(f"label column {column!r} must hold only 0 (normal) and 1 (anomaly)")
    return series.to_numpy(dtype=np.int64)


def _default_features(frame: pd.DataFrame, reserved: set[str]) -> list[str]:
    names: list[str] = []
    for name in frame.columns:
        if name in reserved or pd.api.types.is_datetime64_any_dtype(frame[name]):
            continue
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise DataError(
                f"column {name!r} is not numeric ({frame[name].dtype}); "
                "choose numeric columns with --features"
            )
        names.append(str(name))
    if not names:
        raise DataError("no numeric feature columns found")
    return names


def _check_features(frame: pd.DataFrame, names: list[str]) -> NDArray[np.float64]:
    for name in names:
        column = frame[name]
        if not pd.api.types.is_numeric_dtype(column):
            raise DataError(f"feature column {name!r} is not numeric ({column.dtype})")
        missing = int(column.isna().sum())
        if missing:
            raise DataError(f"feature column {name!r} has {missing} missing values")
        values = column.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise DataError(f"feature column {name!r} has infinite values")
    return frame[names].to_numpy(dtype=np.float64)


def dataset_from_frame(
    frame: pd.DataFrame,
    *,
    source: str,
    features: list[str] | None = None,
    label_column: str | None = None,
) -> Dataset:
    """Validate a frame and split it into features, labels and kinds.

    ``label_column=None`` uses ``is_anomaly`` when the frame has it and trains without
    labels otherwise; a named label column must exist. A label column that marks no
    anomaly says every row is normal: the data is used without labels. ``anomaly_kind`` and
    ``timestamp`` columns are never features unless listed in ``features``.
    """
    columns = [str(c) for c in frame.columns]
    if label_column is not None and label_column not in columns:
        raise DataError(f"label column {label_column!r} not found; columns are {columns}")
    label = label_column or (LABEL_COLUMN if LABEL_COLUMN in columns else None)
    reserved = {c for c in (label, KIND_COLUMN, TIMESTAMP_COLUMN) if c is not None}
    if features is None:
        names = _default_features(frame, reserved)
    else:
        unknown = [name for name in features if name not in columns]
        if unknown:
            raise DataError(f"feature column {unknown[0]!r} not found; columns are {columns}")
        if label is not None and label in features:
            raise DataError(f"column {label!r} is the label; it cannot also be a feature")
        names = list(dict.fromkeys(features))
    if len(frame) < MIN_ROWS:
        raise DataError(f"need at least {MIN_ROWS} rows, got {len(frame)}")
    X = _check_features(frame, names)
    y = _labels(frame, label) if label is not None else None
    if y is not None and int(y.sum()) == 0:
        y = None  # a label column marking no anomaly says every row is normal
    if y is not None and int(y.sum()) < MIN_LABELLED_ANOMALIES:
        raise DataError(
            f"label column {label!r} marks {int(y.sum())} anomalies; need at least "
            f"{MIN_LABELLED_ANOMALIES} (or drop the column to train without labels)"
        )
    if y is not None and int(y.sum()) == len(y):
        raise DataError(f"label column {label!r} marks every row anomalous; need normal rows")
    kinds = None
    if y is not None and KIND_COLUMN in columns and KIND_COLUMN not in names:
        kinds = frame[KIND_COLUMN].astype(str).to_numpy(dtype=np.str_)
    return Dataset(X=X, feature_names=names, y=y, kinds=kinds, source=source)


def load_dataset(
    path: Path, *, features: list[str] | None = None, label_column: str | None = None
) -> Dataset:
    """Read and validate a user's CSV/Parquet file."""
    frame = read_table(path)
    return dataset_from_frame(frame, source=str(path), features=features, label_column=label_column)


def synthetic_dataset(seed: int = 42, n_rows: int = 10_000) -> Dataset:
    """The embedded synthetic sensor data as a ``Dataset``."""
    frame = generate_sensor_data(n_rows, seed=seed)
    return dataset_from_frame(
        frame, source=f"synthetic(rows={n_rows}, seed={seed})", features=list(SENSOR_CHANNELS)
    )
