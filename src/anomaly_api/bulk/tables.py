"""Reading a CSV/Parquet file in chunks, validating its feature columns as it goes.

Memory stays bounded by the chunk size whatever the file size: Parquet is read batch by
batch (``ParquetFile.iter_batches``), CSV with pandas' chunked reader. Rows are numbered
from 1 over the data rows (a CSV's header line is not a row), so ``row 5`` of a CSV is
its 6th line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from numpy.typing import NDArray

from anomaly_api.data.errors import DataError

MAX_ABS_FEATURE: Final = 1e150
"""Largest magnitude scored, as in the API: beyond ~1e154 squared distances overflow."""
_SUFFIXES: Final = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class Chunk:
    """Consecutive rows of the input: the rows as read and their feature matrix."""

    first_row: int
    """1-based number of the chunk's first data row."""
    frame: pd.DataFrame
    X: NDArray[np.float64]


def file_kind(path: Path) -> str:
    """``csv`` or ``parquet``, from the suffix; ``DataError`` for anything else."""
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return kind


def count_rows(path: Path) -> int | None:
    """Data rows of the file (for the progress bar): the Parquet footer, or the CSV's
    newlines counted in 1 MiB blocks (a CSV with quoted newlines is over-counted)."""
    if file_kind(path) == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"
    return max(lines - 1, 0)


def iter_frames(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The file as DataFrames of at most ``chunk_rows`` rows each."""
    try:
        if file_kind(path) == "parquet":
            parquet = pq.ParquetFile(
                path, pre_buffer=False
            )  # pre-buffering kept every row group read
            for batch in parquet.iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        else:
            with pd.read_csv(path, chunksize=chunk_rows) as reader:
                yield from reader
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        if isinstance(exc, DataError):
            raise
        text = str(exc).strip()
        first_line = text.splitlines()[0] if text else type(exc).__name__
        raise DataError(f"{path}: cannot be read: {first_line}") from exc


def check_columns(frame: pd.DataFrame, feature_names: Sequence[str], path: Path) -> None:
    """``DataError`` naming the first feature column the file lacks."""
    columns = [str(c) for c in frame.columns]
    for name in feature_names:
        if name not in columns:
            raise DataError(f"{path}: feature column {name!r} not found; columns are {columns}")


def feature_matrix(
    frame: pd.DataFrame, feature_names: Sequence[str], first_row: int
) -> NDArray[np.float64]:
    """The features as a C-contiguous float64 matrix in model order.

    Raises ``DataError`` naming the column and the row of the first value that is not a
    finite number of magnitude at most 1e150 (text, a boolean, a missing value).
    """
    columns = []
    for name in feature_names:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column.dtype) or not pd.api.types.is_numeric_dtype(
            column.dtype
        ):
            numbers = pd.to_numeric(column, errors="coerce")
            bad = numbers.isna() & column.notna() | column.map(_is_bool)
            if bad.any():
                at = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"column {name!r}, row {first_row + at}: {column.iloc[at]!r} is not a number"
                )
            column = numbers
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.isfinite(values).all() or np.abs(values).max(initial=0.0) > MAX_ABS_FEATURE:
            _raise_bad_value(name, values, first_row)
        columns.append(values)
    return np.ascontiguousarray(np.column_stack(columns), dtype=np.float64)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool | np.bool_)


def _raise_bad_value(name: str, values: NDArray[np.float64], first_row: int) -> None:
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (np.abs(values) > MAX_ABS_FEATURE)
    at = int(np.flatnonzero(bad)[0])
    value = values[at]
    if np.isnan(value):
        what = "missing value (NaN or empty)"
    elif np.isinf(value):
        what = f"infinite value ({value})"
    else:
        what = f"value {value:g} beyond ±{MAX_ABS_FEATURE:g}"
    raise DataError(f"column {name!r}, row {first_row + at}: {what}")


def iter_chunks(path: Path, feature_names: Sequence[str], chunk_rows: int) -> Iterator[Chunk]:
    """Validated chunks of the file, in order; the first problem raises ``DataError``."""
    first_row = 1
    for read in iter_frames(path, chunk_rows):
        check_columns(read, feature_names, path)
        frame = read.reset_index(drop=True)
        yield Chunk(first_row, frame, feature_matrix(frame, feature_names, first_row))
        first_row += len(frame)
