"""Backtest of a time-aware model: replay each stream of a file as the service would.

Every reading is answered from its trailing window, exactly as if the stream's readings
had been appended one by one to ``POST /streams/{id}/readings``: the same warm-up (readings
without ``window - 1`` readings before them are scored point-wise), the same restart after
a gap, the same alarm policy over the stream's anomaly flags from a fresh stream. A stream
is scored in blocks of ``block`` readings, each block with the ``window - 1`` readings
before it, which is all ``TimeAwareModel.score_window`` reads: the answers do not depend
on the block size. The file's feature, timestamp and stream columns are held in memory
(8 bytes per value), the other columns are carried through to the output.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from anomaly_api.artifacts import TimeAwareArtifact, load_any_artifact
from anomaly_api.bulk.scoring import Answers
from anomaly_api.data.errors import DataError
from anomaly_api.data.timeseries import parse_timestamps
from anomaly_api.detection.time_aware import TimeAwareModel
from anomaly_api.monitoring.alarms import AlarmPolicy, AlarmState

__all__ = [
    "REPLAY_COLUMNS",
    "ReplayInput",
    "StreamReplayer",
    "load_replayer",
    "replay_input",
    "worker_replayer",
]

BLOCK_READINGS: Final = 50_000
"""Readings scored per ``score_window`` call (bounds the window features' memory)."""

REPLAY_COLUMNS: Final = (
    "is_anomaly",
    "anomaly_score",
    "confidence",
    "severity",
    "warming_up",
    "alarm",
    "top_feature",
    "top_share",
)
"""The answer's columns of a replayed reading, after the input's own columns."""


@dataclass(frozen=True)
class ReplayInput:
    """A file's readings grouped into streams, each in time order."""

    frame: pd.DataFrame
    """The rows as read (index 0..n-1 in file order)."""
    X: NDArray[np.float64]
    """Features in model order, one row per file row."""
    timestamps: NDArray[np.float64]
    """Epoch seconds of every row."""
    streams: dict[str, NDArray[np.intp]]
    """Row numbers of each stream, in time order, streams in order of first appearance."""


class StreamReplayer:
    """One loaded time-aware model version, replaying streams into answer columns."""

    def __init__(self, artifact: TimeAwareArtifact, policy: AlarmPolicy, backend: str) -> None:
        from anomaly_api.service.scoring import build_scorer

        self.model: TimeAwareModel = artifact.model
        self.version = artifact.manifest.version
        self.feature_names: tuple[str, ...] = tuple(artifact.manifest.feature_names)
        self.policy = policy
        if backend in ("fast", "numpy"):  # warm-up readings as the service scores them
            scorer = build_scorer(self.model.pointwise_, backend)  # type: ignore[arg-type]
            self.model.set_pointwise_scorer(scorer)

    def replay(
        self,
        timestamps: NDArray[np.float64],
        X: NDArray[np.float64],
        *,
        block: int = BLOCK_READINGS,
    ) -> Answers:
        """The answers of one stream's readings (in time order, strictly increasing)."""
        n = len(X)
        history = self.model.window - 1
        answers: Answers = {
            "is_anomaly": np.zeros(n, dtype=np.bool_),
            "anomaly_score": np.empty(n),
            "confidence": np.empty(n),
            "severity": np.empty(n),
            "warming_up": np.zeros(n, dtype=np.bool_),
            "top": np.zeros(n, dtype=np.intp),
            "top_share": np.empty(n),
        }
        for start in range(0, n, block):
            stop = min(n, start + block)
            first = max(0, start - history)
            try:
                with np.errstate(all="ignore"):
                    out = self.model.score_window(
                        timestamps[first:stop], X[first:stop], last=stop - start
                    )
            except ValueError as exc:
                raise DataError(str(exc)) from None
            if not np.isfinite(out.anomaly_score).all():
                raise DataError("readings are too extreme to be scored")
            part = slice(start, stop)
            answers["is_anomaly"][part] = out.is_anomaly
            answers["anomaly_score"][part] = out.anomaly_score
            answers["confidence"][part] = out.confidence
            answers["severity"][part] = out.severity
            answers["warming_up"][part] = out.warming_up
            top = out.top_channel()
            answers["top"][part] = top
            answers["top_share"][part] = out.shares[np.arange(len(top)), top]
        times = timestamps if self.policy.unit == "seconds" else None
        answers["alarm"], _ = self.policy.evaluate(AlarmState(), answers["is_anomaly"], times)
        return answers


def replay_input(
    frame: pd.DataFrame,
    feature_names: tuple[str, ...],
    *,
    timestamp_column: str,
    stream_column: str | None,
) -> ReplayInput:
    """Validate a file's frame for a replay; ``DataError`` names the first problem."""
    from anomaly_api.bulk.tables import check_columns, feature_matrix

    columns = [str(c) for c in frame.columns]
    for role, name in (("timestamp", timestamp_column), ("stream", stream_column)):
        if name is not None and name not in columns:
            raise DataError(f"{role} column {name!r} not found; columns are {columns}")
    frame = frame.reset_index(drop=True)
    check_columns(frame, feature_names, Path("the input"))
    X = feature_matrix(frame, feature_names, 1)
    raw = frame[timestamp_column]
    timestamps = parse_timestamps(raw, timestamp_column)
    if stream_column is None:
        ids = np.full(len(frame), "", dtype=np.str_)
    else:
        column = frame[stream_column]
        missing = np.flatnonzero(column.isna().to_numpy())
        if len(missing):
            raise DataError(f"row {int(missing[0])}: stream column {stream_column!r} is empty")
        ids = column.astype(str).to_numpy(dtype=np.str_)
    order = np.lexsort((timestamps, ids))  # by stream, then time (ties in file order)
    _check_no_duplicates(timestamps, ids, order, raw)
    streams = dict(_groups(ids, order))
    return ReplayInput(frame=frame, X=X, timestamps=timestamps, streams=streams)


def _check_no_duplicates(
    timestamps: NDArray[np.float64], ids: NDArray[np.str_], order: NDArray[np.intp], raw: pd.Series
) -> None:
    """``DataError`` at the first pair of rows of one stream with the same timestamp."""
    same = (ids[order][1:] == ids[order][:-1]) & (np.diff(timestamps[order]) == 0)
    if same.any():
        at = int(np.flatnonzero(same)[0])
        row, prev = int(order[at + 1]), int(order[at])
        where = f" of stream {str(ids[row])!r}" if ids[row] else ""
        raise DataError(
            f"row {row}: timestamp {raw.iloc[row]!r}{where} duplicates row {prev}'s; "
            "a stream holds one reading per timestamp"
        )


def _groups(ids: NDArray[np.str_], order: NDArray[np.intp]) -> Iterator[tuple[str, NDArray[Any]]]:
    """Each stream's rows (``order`` sorted by stream), streams by first appearance."""
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_ids[1:] != sorted_ids[:-1]]))
    bounds = np.append(starts, len(order))
    parts = {str(sorted_ids[a]): order[a:b] for a, b in itertools.pairwise(bounds)}
    for stream in sorted(parts, key=lambda s: int(parts[s].min())):
        yield stream, parts[stream]


def load_replayer(artifacts_dir: Path, version: str | None) -> StreamReplayer:
    """Load a time-aware version with the service's alarm policy and scoring backend."""
    from anomaly_api.config import get_settings
    from anomaly_api.service.monitoring import service_alarm_policy

    settings = get_settings()
    artifact = load_any_artifact(
        artifacts_dir, version, on_version_mismatch=settings.on_version_mismatch
    )
    if not isinstance(artifact, TimeAwareArtifact):
        raise DataError(
            f"model {artifact.manifest.version!r} is point-wise: it scores each row alone, "
            "so a replay needs no --timestamp-column (drop it to score the file)"
        )
    return StreamReplayer(artifact, service_alarm_policy(settings), settings.inference_backend)


@functools.lru_cache(maxsize=4)
def worker_replayer(artifacts_dir: str, version: str) -> StreamReplayer:
    """The replayer of a distributed worker, loaded on its first task and then reused."""
    return load_replayer(Path(artifacts_dir), version)


def replay_on_worker(
    artifacts_dir: str, version: str, timestamps: NDArray[np.float64], X: NDArray[np.float64]
) -> Answers:
    """A distributed task: the answers of one stream."""
    return worker_replayer(artifacts_dir, version).replay(timestamps, X)
