"""A bulk run: read and validate chunks, score them on an engine, write them atomically."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from anomaly_api.bulk.chunk_scorer import Answers
from anomaly_api.bulk.engines import Engine, ReplayEngine
from anomaly_api.bulk.output import AtomicParquetWriter
from anomaly_api.bulk.tables import Chunk, file_kind, iter_chunks

DEFAULT_CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class Summary:
    """What a run did."""

    rows: int
    anomalies: int
    seconds: float
    version: str
    out: Path

    @property
    def rows_per_s(self) -> float:
        """Rows scored per second of wall time (reading and writing included)."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """One human-readable line."""
        share = 100.0 * self.anomalies / self.rows if self.rows else 0.0
        return (
            f"scored {self.rows:,} rows with model {self.version}: {self.anomalies:,} anomalies "
            f"({share:.2f}%) in {self.seconds:.1f} s ({self.rows_per_s:,.0f} rows/s) -> {self.out}"
        )


def scored_chunk(chunk: Chunk, answers: Answers) -> pd.DataFrame:
    """The chunk's rows as read, followed by the answer's columns (see ``_with_answers``)."""
    return _with_answers(chunk.frame, pd.DataFrame(answers))


def run(
    data: Path,
    out: Path,
    engine: Engine,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_rows: Callable[[int], None] | None = None,
) -> Summary:
    """Score ``data`` into ``out`` (Parquet); nothing is under ``out`` unless it succeeds.

    ``DataError`` stops the run at the first bad value, naming its column and row.
    """
    file_kind(data)
    if data.resolve() == out.resolve():
        from anomaly_api.data.errors import DataError

        raise DataError(f"{out}: the output would overwrite the input")
    started = time.perf_counter()
    anomalies = 0
    with AtomicParquetWriter(out) as writer:
        chunks = iter_chunks(data, engine.feature_names, chunk_rows)
        for chunk, answers in engine.score(chunks):
            writer.write(scored_chunk(chunk, answers))
            anomalies += int(answers["is_anomaly"].sum())
            if on_rows is not None:
                on_rows(len(chunk.frame))
        writer.commit()
    return Summary(writer.rows, anomalies, time.perf_counter() - started, engine.version, out)


def replay(
    data: Path,
    out: Path,
    engine: ReplayEngine,
    *,
    timestamp_column: str,
    stream_column: str | None = None,
    events: Path | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> Summary:
    """Backtest: replay each stream of ``data`` in time order into ``out`` (Parquet), the
    rows in file order followed by ``REPLAY_COLUMNS``, and the streams' events into
    ``events`` (JSON Lines, one event a line with its ``stream``); nothing is under ``out``
    or ``events`` unless it succeeds. ``DataError`` names the first bad value."""
    from anomaly_api.bulk.backtest import REPLAY_COLUMNS, replay_input
    from anomaly_api.data.errors import DataError
    from anomaly_api.data.loading import read_table

    file_kind(data)
    targets = [out] if events is None else [out, events]
    if len({data.resolve(), *(t.resolve() for t in targets)}) <= len(targets):
        raise DataError(f"{data}: an output would overwrite the input or the other output")
    if events is not None and not events.parent.is_dir():
        raise DataError(f"{events.parent}: no such directory")
    started = time.perf_counter()
    source = replay_input(
        read_table(data),
        engine.feature_names,
        timestamp_column=timestamp_column,
        stream_column=stream_column,
    )
    n = len(source.frame)
    columns: Answers = {  # a skipped row keeps these: no answer
        "is_anomaly": np.zeros(n, dtype=np.bool_),
        "anomaly_score": np.full(n, np.nan),
        "confidence": np.full(n, np.nan),
        "severity": np.full(n, np.nan),
        "warming_up": np.zeros(n, dtype=np.bool_),
        "alarm": np.zeros(n, dtype=np.bool_),
        "top": np.full(n, -1, dtype=np.intp),
        "top_share": np.full(n, np.nan),
        "event_id": np.full(n, None, dtype=object),
    }
    found: list[dict[str, Any]] = []
    streams = ((sid, stream.timestamps, stream.X) for sid, stream in source.streams.items())
    for stream_id, replayed in engine.replay(streams):
        stream = source.streams[stream_id]
        answered = stream.reading >= 0
        rows = stream.rows[answered]
        for name, values in columns.items():
            values[rows] = replayed.answers[name][stream.reading[answered]]
        found.extend({"stream": stream_id, **event} for event in replayed.events)
        if on_rows is not None:
            on_rows(len(stream.rows))
    names = np.asarray([*engine.feature_names, None], dtype=object)  # -1: no answer
    columns["top_feature"] = names[columns.pop("top")]
    columns["input_policy"] = source.policy
    answers_frame = pd.DataFrame({name: columns[name] for name in REPLAY_COLUMNS})
    with AtomicParquetWriter(out) as writer:
        writer.write(_with_answers(source.frame, answers_frame))
        if events is not None:
            _write_events(events, found)
        writer.commit()
    anomalies = int(columns["is_anomaly"].sum())
    return Summary(writer.rows, anomalies, time.perf_counter() - started, engine.version, out)


def _write_events(path: Path, events: list[dict[str, Any]]) -> None:
    """JSON Lines, written next to ``path`` and renamed onto it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _with_answers(frame: pd.DataFrame, answers: pd.DataFrame) -> pd.DataFrame:
    """The rows as read, followed by the answers; an input column named like an answer
    column (a label ``is_anomaly``, say) is kept as ``<name>_input``."""
    renamed = frame.rename(columns={c: f"{c}_input" for c in answers if c in frame.columns})
    return pd.concat([renamed, answers.set_axis(renamed.index)], axis=1)
