"""Scoring in process through the service's own stream path (``StreamPlane``).

The watcher does not re-implement scoring: each job's readings are appended to a stream of
the same ``StreamStore`` the service uses (Redis when ``ANOMALY_REDIS_URL`` is set, so the
service's ``/streams/{id}`` sees the watcher's streams, their alarms and events), scored by
``StreamPlane.append`` with the job's model. The same answers, events and adaptive state
as a client posting to ``/streams/{id}/readings`` would get.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from anomaly_api.config import Settings
from anomaly_api.registry import model_dir, resolve_alias
from anomaly_api.service.cache import build_cache
from anomaly_api.service.dataplane import DataPlane
from anomaly_api.service.errors import InvalidInputError
from anomaly_api.service.event_answers import StreamEvent
from anomaly_api.service.model_monitor import service_alarm_policy
from anomaly_api.service.predictor import Predictor
from anomaly_api.service.runtime import ServiceRuntime
from anomaly_api.service.stream_answers import StreamAnswer
from anomaly_api.service.streamplane import StreamPlane, model_range
from anomaly_api.service.streams import StreamCapacityError, StreamOrderError
from anomaly_api.watch.config import ModelRef

__all__ = ["Outcome", "Readings", "ScoredReadings", "WatchScorer"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Readings:
    """One stream's new readings, oldest first: timestamps (epoch s) and channel values."""

    stream_id: str
    labels: Mapping[str, str]
    """The input's labels (the Prometheus group, or the MQTT topic), for the sinks."""
    timestamps: Sequence[float]
    rows: Sequence[Mapping[str, float]]


@dataclass(frozen=True, slots=True)
class ScoredReadings:
    """What the sinks get: the answers, the events they belong to, the model's ranges."""

    job: str
    readings: Readings
    answers: list[StreamAnswer]
    events: list[StreamEvent]
    channels: tuple[str, ...]
    expected_lower: NDArray[np.float64]
    expected_upper: NDArray[np.float64]
    model_version: str


@dataclass
class Outcome:
    """Counts of one ``score`` call (the runner adds them to its metrics)."""

    scored: int = 0
    late: int = 0
    """Readings not later than the stream's last one (late or duplicate): skipped."""
    invalid: int = 0
    """Readings the model cannot take (a missing or unknown channel, not a number)."""
    refused: int = 0
    """Readings the store refused (stream limit reached)."""
    results: list[ScoredReadings] = field(default_factory=list)


class WatchScorer:
    """One ``StreamPlane`` over the service's stream store, a predictor per named model."""

    def __init__(self, settings: Settings, artifacts_dir: Path) -> None:
        self.settings = settings
        self.artifacts_dir = artifacts_dir
        self.runtime = ServiceRuntime(settings, build_cache(settings))
        self.streamplane = StreamPlane(
            DataPlane(self.runtime),
            self.runtime.streams,
            window_max_readings=settings.window_max_readings,
            stream_max_readings=settings.stream_max_readings,
            retry_after_s=settings.stream_retry_after_s,
            max_window=settings.stream_max_window,
            alarm_policy=service_alarm_policy(settings),
        )
        self._predictors: dict[ModelRef, Predictor] = {}
        self._ranges: dict[int, tuple[Predictor, NDArray[np.float64], NDArray[np.float64]]] = {}
        self._open: dict[str, set[str]] = {}
        """Each stream's events left open by its last batch."""
        self._last: dict[str, float] = {}
        """Each stream's last scored timestamp in this process (late readings are skipped
        before the store sees them, so one late reading does not refuse its batch)."""

    def load(self, ref: ModelRef) -> Predictor:
        """The predictor of ``ref`` (loaded once): ``model_dir`` + the alias's version."""
        found = self._predictors.get(ref)
        if found is None:
            directory = model_dir(self.artifacts_dir, ref.name)
            version = resolve_alias(self.artifacts_dir, ref.name, ref.alias)
            runtime = ServiceRuntime(
                self.settings.model_copy(update={"artifacts_dir": directory}),
                self.runtime.cache,
                self.runtime.streams,
            )
            found = runtime.build_predictor(version)
            self._predictors[ref] = found
        return found

    def unload(self, name: str) -> None:
        """Forget the loaded predictors of model ``name``: the next readings are scored
        by the version its alias names then (a fit may have moved it)."""
        for ref in [ref for ref in self._predictors if ref.name == name]:
            del self._predictors[ref]

    async def score(
        self, job: str, ref: ModelRef, batch: Readings, *, explain_all: bool = True
    ) -> Outcome:
        """Append ``batch`` to its stream and answer every reading (in chunks of at most
        ``stream_max_readings``); bad or late readings are counted, never raised.
        ``explain_all=False``: contributions only where a sink reads them (the anomalies,
        for the events; the last reading, for the latest values)."""
        predictor = self.load(ref)
        outcome = Outcome()
        complete, X = _complete(predictor.feature_names, batch.rows)
        outcome.invalid = len(batch.rows) - len(complete)
        last = self._last.get(batch.stream_id, -np.inf)
        keep, kept = [], []
        for position, i in enumerate(complete):
            if batch.timestamps[i] > last:
                keep.append(i)
                kept.append(position)
                last = batch.timestamps[i]
        outcome.late = len(complete) - len(keep)
        X = X[kept]
        limit = self.settings.stream_max_readings
        for start in range(0, len(keep), limit):
            chunk = keep[start : start + limit]
            await self._append(
                job,
                predictor,
                batch,
                chunk,
                X=X[start : start + limit],
                outcome=outcome,
                explain_all=explain_all,
            )
        return outcome

    async def _append(
        self,
        job: str,
        predictor: Predictor,
        batch: Readings,
        chunk: list[int],
        *,
        X: NDArray[np.float64],
        outcome: Outcome,
        explain_all: bool,
    ) -> None:
        stamps = [batch.timestamps[i] for i in chunk]
        try:
            answer = await self.streamplane.append(
                batch.stream_id,
                stamps,
                X,
                top_k=None,
                predictor=predictor,
                explain_all=explain_all,
            )
        except StreamOrderError:  # another writer got there first: the store's order wins
            outcome.late += len(chunk)
            return
        except StreamCapacityError:
            outcome.refused += len(chunk)
            return
        except InvalidInputError as exc:
            _log.warning("job %s stream %s: %s", job, batch.stream_id, exc)
            outcome.invalid += len(chunk)
            return
        self._last[batch.stream_id] = stamps[-1]
        outcome.scored += len(chunk)
        low, high = self._range(predictor)
        rows = [batch.rows[i] for i in chunk]
        outcome.results.append(
            ScoredReadings(
                job=job,
                readings=Readings(batch.stream_id, batch.labels, stamps, rows),
                answers=answer.answers,
                events=await self._events(batch.stream_id, answer.answers),
                channels=tuple(predictor.feature_names),
                expected_lower=low,
                expected_upper=high,
                model_version=answer.model_version,
            )
        )

    def _range(self, predictor: Predictor) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        found = self._ranges.get(id(predictor))
        if found is None or found[0] is not predictor:
            found = (predictor, *model_range(predictor))
            self._ranges[id(predictor)] = found
        return found[1], found[2]

    async def _events(self, stream_id: str, answers: list[StreamAnswer]) -> list[StreamEvent]:
        """The stream's events these answers belong to, and those open before them (so a
        sink sees an event close even though the closing reading is not part of it), as
        ``GET /streams/{id}/events`` gives them."""
        ids = {a.event_id for a in answers if a.event_id is not None}
        ids |= self._open.pop(stream_id, set())
        if not ids:
            return []
        found = await self.streamplane.events(stream_id, limit=len(ids) + 8)
        events = [event for event in found.events if event.id in ids]
        still_open = {event.id for event in events if event.open}
        if still_open:
            self._open[stream_id] = still_open
        return events

    async def forget(self, stream_id: str) -> None:
        """Start ``stream_id`` afresh (a backfill's stream), whether or not it exists."""
        await self.runtime.streams.delete(stream_id)
        self._last.pop(stream_id, None)
        self._open.pop(stream_id, None)

    async def close(self) -> None:
        """Close the cache and the store's connections."""
        await self.runtime.cache.close()
        await self.runtime.streams.close()


def _complete(
    names: Sequence[str], rows: Sequence[Mapping[str, float]]
) -> tuple[list[int], NDArray[np.float64]]:
    """The readings holding every channel of the model (and no other) as a finite number,
    and their values in the model's order; the others are left out (invalid)."""
    n = len(names)
    keep: list[int] = []
    values: list[list[object]] = []
    for i, row in enumerate(rows):
        if len(row) != n:
            continue
        try:
            values.append([row[name] for name in names])
        except KeyError:
            continue
        keep.append(i)
    try:
        X = np.array(values, dtype=np.float64).reshape(len(values), n)
        numbers = np.fromiter(
            (all(type(v) in (int, float) for v in row) for row in values), bool, len(values)
        )
    except (TypeError, ValueError):  # a string or a list among the values: row by row
        X = np.array([[_number(v) for v in row] for row in values], dtype=np.float64)
        X = X.reshape(len(values), n)
        numbers = np.ones(len(values), dtype=bool)
    good = numbers & np.isfinite(X).all(axis=1)
    return [i for i, ok in zip(keep, good.tolist(), strict=True) if ok], X[good]


def _number(value: object) -> float:
    """A JSON number as a float; anything else as NaN (refused with the non-finite)."""
    return float(value) if type(value) in (int, float) else np.nan  # type: ignore[arg-type]
