"""Backtest of a time-aware model: replay each stream of a file as the service would.

Every reading is answered from its trailing window, exactly as if the stream's readings
had been appended one by one to ``POST /streams/{id}/readings``: the same warm-up (readings
without ``window - 1`` readings before them are scored point-wise), the same restart after
a gap, the same adaptive threshold (``monitoring/adaptation.py``, when on), the same alarm
policy over the stream's anomaly flags from a fresh stream and the same events
(``anomaly_api.service.streams.events``). A stream is scored in blocks of
``block`` readings, each block with the ``window - 1`` readings before it, which is all
``TimeAwareModel.score_window`` reads, and the followed level and spread after the block
before it (a model with the ``follow`` feature): the answers do not depend on the block
size. The
file's feature, timestamp and stream columns are held in memory (8 bytes per value), the
other columns are carried through to the output.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson
import pandas as pd
from numpy.typing import NDArray

from anomaly_api.artifacts import TimeAwareArtifact, load_any_artifact
from anomaly_api.bulk.chunk_scorer import Answers
from anomaly_api.data.errors import DataError
from anomaly_api.data.timeseries import UNSORTED_SHARE, time_and_stream
from anomaly_api.detection.time_aware import TimeAwareModel
from anomaly_api.monitoring.adaptation import AdaptationModel, AdaptiveState, adapt, answered
from anomaly_api.monitoring.alarms import AlarmPolicy, AlarmState
from anomaly_api.service.stream_timestamps import tidy
from anomaly_api.service.streams.events import EventInput, EventTrack, expected_range, track

__all__ = [
    "REPLAY_COLUMNS",
    "ReplayInput",
    "ReplayedStream",
    "StreamInput",
    "StreamReplayer",
    "load_replayer",
    "point_wise_error",
    "replay_input",
    "worker_replayer",
]

TOP_REASONS: Final = 3
"""Channels whose reasons an anomalous reading keeps (a stream answer's default ``top_k``)."""

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
    "event_id",
    "input_policy",
)
"""The answer's columns of a replayed reading, after the input's own columns."""


@dataclass(frozen=True)
class StreamInput:
    """One stream of a file: its rows and the readings they make, as the service takes
    readings as they come (``tidy``: repeated timestamps merged, a clock stepping back
    skipped)."""

    rows: NDArray[np.intp]
    """The stream's file rows, in file order."""
    reading: NDArray[np.intp]
    """For each of ``rows``, the reading it became (merged rows share one), -1 if skipped."""
    timestamps: NDArray[np.float64]
    """Epoch seconds of each reading, strictly increasing."""
    X: NDArray[np.float64]
    """Features of each reading in model order (the mean of merged rows)."""


@dataclass(frozen=True)
class ReplayInput:
    """A file's rows grouped into streams, streams in order of first appearance."""

    frame: pd.DataFrame
    """The rows as read (index 0..n-1 in file order)."""
    streams: dict[str, StreamInput]
    policy: NDArray[np.object_]
    """Per row: ``"merged"`` (one of several rows of a stream with one timestamp),
    ``"skipped"`` (its clock stepped back) or None."""


@dataclass(frozen=True)
class ReplayedStream:
    """One stream's replay: its answers (``REPLAY_COLUMNS`` but ``top_feature``, which is
    ``top`` as a channel index) and its events, oldest first, as ``GET /streams/{id}/events``
    lists them."""

    answers: Answers
    events: list[dict[str, Any]]


class StreamReplayer:
    """One loaded time-aware model version, replaying streams into answer columns."""

    def __init__(
        self,
        artifact: TimeAwareArtifact,
        policy: AlarmPolicy,
        backend: str,
        adaptation: AdaptationModel | None = None,
    ) -> None:
        from anomaly_api.service.scorer import build_scorer

        self.model: TimeAwareModel = artifact.model
        self.version = artifact.manifest.version
        self.feature_names: tuple[str, ...] = tuple(artifact.manifest.feature_names)
        self.policy = policy
        self.adaptation = adaptation
        """The stream's adaptive threshold, as the service applies it (None: off)."""
        self._channel = {name: c for c, name in enumerate(self.feature_names)}
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
            "shares": np.empty((n, len(self.feature_names))),
            "deviations": np.full(n, None, dtype=object),
            "why": np.full(n, None, dtype=object),
        }
        followed = None  # the stream's followed level and spread: the training state
        for start in range(0, n, block):
            stop = min(n, start + block)
            first = max(0, start - history)
            try:
                with np.errstate(all="ignore"):
                    out = self.model.score_window(
                        timestamps[first:stop], X[first:stop], last=stop - start, follow=followed
                    )
            except ValueError as exc:
                raise DataError(str(exc)) from None
            followed = out.follow
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
            answers["shares"][part] = out.shares
            for i in np.flatnonzero(out.is_anomaly).tolist():  # what events keep
                answers["deviations"][start + i] = out.deviations[i]
                listed = out.contributions(i, TOP_REASONS)
                answers["why"][start + i] = {
                    self._channel[name]: part["why"] for name, part in listed.items()
                }
        if self.adaptation is not None:
            flags, shifts, _ = adapt(
                self.adaptation,
                AdaptiveState(),
                answers["anomaly_score"],
                answers["is_anomaly"],
                answers["warming_up"],
                shares=answers["shares"],
                channels=self.feature_names,
            )
            answers["is_anomaly"] = flags
            answers["anomaly_score"] = answers["anomaly_score"] - shifts
            answers["severity"], answers["confidence"] = answered(answers["anomaly_score"])
        times = timestamps if self.policy.unit == "seconds" else None
        answers["alarm"], _ = self.policy.evaluate(AlarmState(), answers["is_anomaly"], times)
        return answers

    def replay_stream(
        self, stream_id: str, timestamps: NDArray[np.float64], X: NDArray[np.float64]
    ) -> ReplayedStream:
        """``replay`` and ``events`` of one stream."""
        answers = self.replay(timestamps, X)
        ids, events = self.events(stream_id, timestamps, X, answers)
        del answers["shares"], answers["why"], answers["deviations"]
        answers["event_id"] = np.array(ids, dtype=object)
        return ReplayedStream(answers, events)

    def events(
        self,
        stream_id: str,
        timestamps: NDArray[np.float64],
        X: NDArray[np.float64],
        answers: Answers,
    ) -> tuple[list[str | None], list[dict[str, Any]]]:
        """Each reading's event id and the stream's events (oldest first), as the service
        would have recorded them; ids are ``<8 hex of the stream id's SHA-256>-<number>``."""
        low, high = expected_range(self.model)
        inputs = EventInput(
            severities=answers["severity"],
            shares=answers["shares"],
            values=X,
            channels=self.feature_names,
            low=low,
            high=high,
            why=tuple(w or {} for w in answers["why"].tolist()),
            kinds=tuple(self.model.kinds_),
            deviations=answers["deviations"],
        )
        epoch = hashlib.sha256(stream_id.encode()).hexdigest()[:8]
        _, ids, written = track(
            EventTrack(),
            self.policy,
            epoch=epoch,
            first=0,
            flags=answers["is_anomaly"],
            alarms=answers["alarm"],
            times=timestamps,
            inputs=inputs,
        )
        records = {event: orjson.loads(record) for event, record in written}
        return ids, sorted(records.values(), key=lambda e: int(e["first_reading"]))


def replay_input(
    frame: pd.DataFrame,
    feature_names: tuple[str, ...],
    *,
    timestamp_column: str,
    stream_column: str | None,
) -> ReplayInput:
    """Validate a file's frame for a replay; ``DataError`` names the first problem."""
    from anomaly_api.bulk.tables import check_columns, feature_matrix

    frame, raw, timestamps, ids = time_and_stream(
        frame, timestamp_column=timestamp_column, stream_column=stream_column
    )
    check_columns(frame, feature_names, Path("the input"))
    X = feature_matrix(frame, feature_names, 1)
    policy = np.full(len(frame), None, dtype=object)
    streams: dict[str, StreamInput] = {}
    for stream, rows in _groups(ids):
        tidied = tidy(timestamps[rows], X[rows])
        if tidied.skipped > UNSORTED_SHARE * len(rows):
            first = int(rows[np.flatnonzero(tidied.reading < 0)[0]])
            where = f" of stream {stream!r}" if stream else ""
            raise DataError(
                f"row {first}: timestamp {raw.iloc[first]!r}{where} is earlier than a row "
                f"before it, as are {tidied.skipped} of the stream's {len(rows)} rows: more "
                f"than a clock stepping back ({UNSORTED_SHARE:.0%}); sort the file by time"
            )
        sizes = np.bincount(tidied.reading[tidied.reading >= 0], minlength=len(tidied.kept))
        policy[rows[tidied.reading < 0]] = "skipped"
        policy[rows[(tidied.reading >= 0) & (sizes[tidied.reading] > 1)]] = "merged"
        streams[stream] = StreamInput(rows, tidied.reading, tidied.timestamps, tidied.values)
    return ReplayInput(frame=frame, streams=streams, policy=policy)


def _groups(ids: NDArray[np.str_]) -> Iterator[tuple[str, NDArray[np.intp]]]:
    """Each stream's rows in file order, streams by first appearance."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_ids[1:] != sorted_ids[:-1]]))
    bounds = np.append(starts, len(order))
    parts = {str(sorted_ids[a]): order[a:b] for a, b in itertools.pairwise(bounds)}
    for stream in sorted(parts, key=lambda s: int(parts[s][0])):
        yield stream, parts[stream]


def point_wise_error(version: str) -> DataError:
    """What a replay of a point-wise model says: it needs no replay."""
    return DataError(
        f"model {version!r} is point-wise: it scores each row alone, "
        "so a replay needs no --timestamp-column (drop it to score the file)"
    )


def load_replayer(
    artifacts_dir: Path, version: str | None, *, adapt_streams: bool | None = None
) -> StreamReplayer:
    """Load a time-aware version with the service's alarm policy, scoring backend and
    stream adaptation (``adapt_streams`` None: the ``stream_adaptation`` setting)."""
    from anomaly_api.config import get_settings
    from anomaly_api.service.model_monitor import service_alarm_policy
    from anomaly_api.training.references import adaptation_model, load_references

    settings = get_settings()
    artifact = load_any_artifact(
        artifacts_dir, version, on_version_mismatch=settings.on_version_mismatch
    )
    if not isinstance(artifact, TimeAwareArtifact):
        raise point_wise_error(artifact.manifest.version)
    on = settings.stream_adaptation if adapt_streams is None else adapt_streams
    adaptation = (
        adaptation_model(
            artifact.model,
            load_references(artifact.path, artifact.manifest).scores,
            settings.stream_adaptation_memory,
        )
        if on
        else None
    )
    return StreamReplayer(
        artifact, service_alarm_policy(settings), settings.inference_backend, adaptation
    )


@functools.lru_cache(maxsize=4)
def worker_replayer(artifacts_dir: str, version: str) -> StreamReplayer:
    """The replayer of a distributed worker, loaded on its first task and then reused."""
    return load_replayer(Path(artifacts_dir), version)


def replay_on_worker(
    artifacts_dir: str,
    version: str,
    stream_id: str,
    timestamps: NDArray[np.float64],
    X: NDArray[np.float64],
) -> ReplayedStream:
    """A distributed task: the replay of one stream."""
    return worker_replayer(artifacts_dir, version).replay_stream(stream_id, timestamps, X)
