"""``StreamPlane``: scoring windows of readings and stateful streams, free of HTTP.

Two entry points, both answering per reading (``StreamAnswer``)::

    await streamplane.window(timestamps, rows, mode="last")    # stateless, -> WindowAnswer
    await streamplane.append(stream_id, timestamps, rows)      # stateful, -> StreamReadingsAnswer

A time-aware model scores each reading from its trailing window (``score_window``); readings
without a full window are scored point-wise and marked ``warming_up``. A point-wise model
scores every reading alone (``warming_up`` is always false, ``model_kind`` says which kind
answered). Scored readings are handed to the ``DataPlane``'s hooks, so the prediction
metrics (and any other hook) count stream readings too.

Stateful streams keep ``history_needed`` readings per stream in the ``StreamStore`` (one
reading for a point-wise model: enough to refuse out-of-order timestamps). Every input
check runs before the store is touched, and the store's append is all or nothing, so a
refused request leaves the stream as it was.

The store's model key is ``stream_key(predictor)``: the fitted model the served version
serves (a threshold revision's root, ``fitted_model_of``), the window length and the
feature names -- what gives the stored readings their meaning. A threshold revision (or
a reload back to another revision of the same fit) keeps every stream, its window and its
alarm state; a differently fitted model restarts them. Answers still carry the served
``model_version``.

Every answer carries ``alarm``: the alarm policy (the ``alarm_*`` settings, or the
request's) over the stream's anomaly flags, warming-up readings included. A stream keeps
its alarm state in the store (``stream_alarms``); a window is evaluated from a fresh state.

A stream's threshold follows its normal operation (``monitoring/adaptation.py``) when
adaptation is on (the ``stream_adaptation`` setting, or the request's ``adapt``) and the
model kept its scores: its answers are the adapted ones (flag, score, severity and
confidence after the raise). The adaptive state is kept with the alarm state and advanced
under the same compare-and-set; ``false_alarm``/``expected`` feedback widens it and
``confirmed`` takes that back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Literal

import anyio.to_thread
import numpy as np
from numpy.typing import NDArray

from anomaly_api.artifacts import fitted_model_of
from anomaly_api.detection.contributions import severity_from_score
from anomaly_api.detection.following import FOLLOW_SPREAD, Followed, advance, follow_alpha
from anomaly_api.detection.voting import confidence_from_score
from anomaly_api.monitoring.adaptation import (
    AdaptationModel,
    AdaptiveState,
    narrow,
    widen,
)
from anomaly_api.monitoring.alarms import AlarmPolicy
from anomaly_api.monitoring.widening import Deviations, allowances
from anomaly_api.service.dataplane import DataPlane, ScoredBatch
from anomaly_api.service.errors import (
    EventNotFoundError,
    InvalidInputError,
    StreamNotFoundError,
)
from anomaly_api.service.event_answers import (
    FeedbackLabel,
    StreamEvent,
    StreamEventsAnswer,
    event_answer,
)
from anomaly_api.service.prediction_columns import PredictionColumns
from anomaly_api.service.predictor import FeatureRow, Predictor
from anomaly_api.service.stream_alarms import Adaptation, Evaluated, StreamAlarms, window_alarms
from anomaly_api.service.stream_answers import (
    Contribution,
    ModelKind,
    StreamAdaptationAnswer,
    StreamAlarmAnswer,
    StreamAnswer,
    StreamFollowAnswer,
    StreamReadingsAnswer,
    StreamStateAnswer,
    StreamSummary,
    StreamWidening,
    WindowAnswer,
    stream_answers,
)
from anomaly_api.service.stream_listing import (
    StreamListAnswer,
    StreamScoresAnswer,
    list_answer,
    scores_answer,
)
from anomaly_api.service.stream_timestamps import (
    Timestamp,
    as_sent,
    iso,
    parse_timestamps,
    tidy,
)
from anomaly_api.service.streams import (
    FollowSpec,
    InvalidReadingsError,
    RecentScore,
    StoredAlarm,
    StreamCapacityError,
    StreamOrderError,
    StreamStore,
    StreamWindow,
    StreamWindowMoved,
    check_stream_id,
)
from anomaly_api.service.streams.events import (
    EventInput,
    Feedback,
    expected_range,
    parse_event_id,
)
from anomaly_api.training.references import adaptation_model

__all__ = [
    "Mode",
    "StreamPlane",
    "Timestamp",
    "iso",
    "key_version",
    "parse_timestamps",
    "stream_key",
]

Mode = Literal["last", "all"]

SCORE_THRESHOLD = 0.0
"""The ``anomaly_score`` at which a reading is flagged: scores are margins past the model's
own threshold, so a plot of a stream's scores draws its threshold at 0."""

_OFFLOAD_READINGS = 64
"""Windows of at least this many readings are scored in a worker thread."""
_FEEDBACK_ATTEMPTS = 8
"""Compare-and-set attempts of a feedback's change to the adaptive state."""

_log = logging.getLogger(__name__)


class StreamPlane:
    """Answers windows and stream readings with the data plane's current model."""

    def __init__(
        self,
        dataplane: DataPlane,
        store: StreamStore,
        *,
        window_max_readings: int,
        stream_max_readings: int,
        retry_after_s: int = 60,
        max_window: int = 1024,
        alarm_policy: AlarmPolicy | None = None,
        on_alarms: Callable[[str, int], None] | None = None,
        adaptation: bool = True,
        adaptation_memory: float = 200.0,
    ) -> None:
        self.dataplane = dataplane
        self.adaptation = adaptation
        """Streams adapt unless a request says otherwise (the ``stream_adaptation`` setting)."""
        self.adaptation_memory = adaptation_memory
        """``AdaptationModel.memory`` (the ``stream_adaptation_memory`` setting)."""
        self.alarm_policy = alarm_policy or AlarmPolicy()
        """The default policy (the ``alarm_*`` settings); a request may bring its own."""
        self.on_alarms = on_alarms
        """Called with (stream id, alarms raised) after an append raised alarms (metrics)."""
        self.alarms = StreamAlarms(store)
        self.retry_after_s = retry_after_s
        self.max_window = max_window
        """The store's largest window: a model needing more warms up forever, never a 500."""
        self.store = store
        self.window_max_readings = window_max_readings
        self.stream_max_readings = stream_max_readings
        self._key: tuple[weakref.ref[Predictor], str] | None = None
        """The last predictor's stream key (computed once per served model, which it does
        not keep alive)."""
        self._ranges: (
            tuple[weakref.ref[Predictor], NDArray[np.float64], NDArray[np.float64], dict[str, int]]
            | None
        ) = None
        """The last predictor's expected range per channel (``expected_range``) and each
        channel's index by name."""
        self._adaptive: tuple[weakref.ref[Predictor], AdaptationModel | None] | None = None
        """The last predictor's adaptation model (``adaptation_model``)."""

    # ------------------------------------------------------------------ entry points
    async def window(
        self,
        timestamps: Sequence[Timestamp],
        rows: Sequence[FeatureRow],
        *,
        mode: Mode = "last",
        top_k: int | None = 3,
        alarm_policy: AlarmPolicy | None = None,
        predictor: Predictor | None = None,
    ) -> WindowAnswer:
        """Answers for the last reading (``mode="last"``) or every reading (``"all"``),
        scored by ``predictor`` (the ready one when omitted).

        Alarms are evaluated over the answered readings from a fresh state (no stream)."""
        predictor = self.dataplane.require_ready() if predictor is None else predictor
        self._check_count(len(rows), self.window_max_readings, "a window")
        X = predictor.to_matrix(rows, label_rows=False)
        tidied = tidy(parse_timestamps(timestamps, len(rows)), X)
        ts, X = tidied.timestamps, tidied.values
        started = time.perf_counter()
        n_out = 1 if mode == "last" else len(X)
        answers, predictions, _ = await self._score(predictor, ts, X, n_out, top_k)
        inference_ms = (time.perf_counter() - started) * 1000.0
        offset = len(X) - n_out
        flags = np.fromiter((a.is_anomaly for a in answers), bool, len(answers))
        alarms = window_alarms(alarm_policy or self.alarm_policy, flags, ts[offset:])
        for answer, alarm in zip(answers, alarms.tolist(), strict=True):
            answer.index = int(tidied.kept[answer.index + offset])
            answer.alarm = alarm
        n_anomalies = sum(a.is_anomaly for a in answers)
        self._report(predictor, X[offset:], predictions, n_anomalies, inference_ms)
        return WindowAnswer(
            answers=answers,
            n_anomalies=n_anomalies,
            model_version=predictor.version,
            model_kind=_kind(predictor),
            window=_history(predictor),
            inference_ms=inference_ms,
        )

    async def append(
        self,
        stream_id: str,
        timestamps: Sequence[Timestamp],
        rows: Sequence[FeatureRow] | NDArray[np.float64],
        *,
        top_k: int | None = 3,
        alarm_policy: AlarmPolicy | None = None,
        predictor: Predictor | None = None,
        adapt: bool | None = None,
        explain_all: bool = True,
        follow: bool = True,
    ) -> StreamReadingsAnswer:
        """Append readings to a stream and answer each of them from the stream's window,
        scored by ``predictor`` (the ready one when omitted); ``adapt`` overrides the
        service's adaptation for these readings. A model with the ``follow`` feature judges
        each reading against the stream's followed level and spread, which the store moves
        with the append (``follow=False``: against the training ones, the stream's left
        as it is). ``rows`` may already be a float64 matrix in
        the model's feature order (``Predictor.to_matrix``). ``explain_all=False`` lists
        contributions only for the anomalies (as the model flagged them, before adaptation)
        and the last reading (what the events and a latest-value view read; the reasons in
        words are most of a time-aware reading's cost), the others' left empty."""
        check_stream_id(stream_id)
        predictor = self.dataplane.require_ready() if predictor is None else predictor
        self._check_count(len(rows), self.stream_max_readings, "one request to a stream")
        X = predictor.to_matrix(rows, label_rows=False)
        ts = parse_timestamps(timestamps, len(rows))
        history = _history(predictor)
        started = time.perf_counter()
        spec = follow_spec(predictor) if follow else None
        try:
            # Each new reading needs the ``history - 1`` readings before it: the store keeps
            # ``history - 1 + n_new`` for this call, then trims to what later calls need.
            window = await self.store.append(
                stream_id,
                ts,
                X,
                window=min(history - 1 + len(X), self.max_window),
                model_key=self._stream_key(predictor),
                defer=True,
                follow=spec,
            )
            score = partial(
                self._evaluated,
                predictor,
                readings=X,
                follow=spec,
                top_k=top_k,
                alarm_policy=alarm_policy or self.alarm_policy,
                adapt=adapt,
                explain_all=explain_all,
            )
            try:
                answers, predictions, model, done = await score(window)
            except StreamWindowMoved as moved:  # scored from another window than the stored
                window = moved.window
                answers, predictions, model, done = await score(window)
            except Exception:
                await self.store.settle(window)
                raise
        except StreamCapacityError as exc:
            raise StreamCapacityError(exc.max_streams, retry_after_s=self.retry_after_s) from None
        except StreamOrderError as exc:
            raise as_sent(exc, timestamps) from None
        _adapted_answers(answers, done)
        self._record_recent(window, answers)  # the scores as answered (adapted)
        alarms, alarm = done.alarms, done.stored
        for answer, raised, event in zip(answers, alarms.tolist(), done.event_ids, strict=True):
            answer.alarm = raised
            answer.event_id = event
        n_alarms = int(alarms.sum())
        if n_alarms and self.on_alarms is not None:
            self.on_alarms(stream_id, n_alarms)
        inference_ms = (time.perf_counter() - started) * 1000.0
        n_anomalies = sum(a.is_anomaly for a in answers)
        self._report(predictor, X, predictions, n_anomalies, inference_ms)
        return StreamReadingsAnswer(
            stream_id=stream_id,
            answers=answers,
            n_anomalies=n_anomalies,
            model_version=predictor.version,
            model_kind=_kind(predictor),
            stream=StreamSummary(
                readings_in_window=min(len(window), history),
                window=history,
                total=window.total,
                warming_up=predictor.time_aware is not None and len(window) < history,
                restarted=window.restarted,
                new_stream=window.new_stream,
                model_changed=window.model_changed,
                backend=self.store.backend,
                degraded=window.degraded,
                alarms=alarm.state.alarms,
                threshold_raise=(
                    None if model is None or alarm.adaptive is None else alarm.adaptive.shift(model)
                ),
            ),
            inference_ms=inference_ms,
        )

    async def state(self, stream_id: str) -> StreamStateAnswer:
        """A live stream's state; ``StreamNotFoundError`` when there is none."""
        check_stream_id(stream_id)
        found = await self.store.get(stream_id)
        if found is None:
            raise StreamNotFoundError(f"stream {stream_id!r} does not exist (or has expired)")
        served = self.dataplane.runtime.predictor
        model = None
        if served is not None and self._stream_key(served) == found.model_key:
            version = served.version  # the stream carries on under the served version
            model = self._adaptation_model(served)
        else:
            version = key_version(found.model_key)
        return StreamStateAnswer(
            stream_id=stream_id,
            total=found.total,
            readings_in_window=found.window_length,
            n_features=found.n_features,
            first_timestamp=iso(found.first_timestamp),
            last_timestamp=iso(found.last_timestamp),
            model_version=version,
            expires_in_s=found.expires_in_s,
            backend=self.store.backend,
            degraded=found.degraded,
            alarm=_alarm_answer(found.alarm),
            adaptation=self._adaptation_answer(found.alarm, model),
            follow=_follow_answer(found.followed, served),
        )

    async def reset(self, stream_id: str) -> None:
        """Forget a stream; ``StreamNotFoundError`` when there is none."""
        check_stream_id(stream_id)
        if not await self.store.delete(stream_id):
            raise StreamNotFoundError(f"stream {stream_id!r} does not exist (or has expired)")

    async def events(
        self, stream_id: str, *, limit: int, before: str | None = None
    ) -> StreamEventsAnswer:
        """A live stream's events, newest first; ``StreamNotFoundError`` when there is none,
        ``InvalidInputError`` for a ``before`` that is no event id."""
        check_stream_id(stream_id)
        number = None
        if before is not None:
            parsed = parse_event_id(before)
            if parsed is None:
                raise InvalidInputError(f"before: {before[:40]!r} is not an event id")
            number = parsed[1]
        found = await self.store.list_events(stream_id, limit=limit + 1, before=number)
        if found is None:
            raise StreamNotFoundError(f"stream {stream_id!r} does not exist (or has expired)")
        events = [event_answer(stored) for stored in found[:limit]]
        more = len(found) > limit
        return StreamEventsAnswer(
            stream_id=stream_id,
            events=events,
            next_before=events[-1].id if more and events else None,
        )

    async def feedback(
        self, stream_id: str, event: str, *, label: FeedbackLabel, note: str, by: str
    ) -> tuple[StreamEvent, bool]:
        """Label an event; returns it with its feedback and whether the label is new (a
        repeated label changes nothing). ``EventNotFoundError`` for an unknown event."""
        check_stream_id(stream_id)
        if parse_event_id(event) is None:
            raise EventNotFoundError(f"stream {stream_id!r} has no event {event[:40]!r}")
        entry = Feedback(label=label, note=note, by=by, at=time.time()).to_json()
        status, stored = await self.store.add_feedback(stream_id, event, label, entry)
        if stored is None:
            raise EventNotFoundError(
                f"stream {stream_id!r} has no event {event!r} (or the stream has expired)"
            )
        answer = event_answer(stored)
        if status == "ok":
            await self._feedback_adapts(stream_id, answer, label)
        return answer, status == "ok"

    async def _feedback_adapts(self, stream_id: str, event: StreamEvent, label: str) -> None:
        """``false_alarm``/``expected``: widen the stream's adaptive state by the event's
        peak; ``confirmed``: take a widening of this event back. Logged; a stream whose
        model cannot adapt, or that has moved to another model, keeps its state."""
        served = self.dataplane.runtime.predictor
        model = None if served is None else self._adaptation_model(served)
        if model is None:
            return
        severity = min(event.peak_severity, 1.0 - 1e-9)
        peak = severity / (1.0 - severity)  # severity is a / (1 + a)
        for _ in range(_FEEDBACK_ATTEMPTS):
            stored = await self.store.read_alarm(stream_id)
            if stored is None:
                return
            before = stored.adaptive or AdaptiveState()
            if label == "confirmed":
                after = narrow(before, event.id)
            else:
                top = [(sensor.feature, sensor.share) for sensor in event.top_sensors]
                peaks = {s.feature: s.peak_z for s in event.top_sensors if s.peak_z is not None}
                after = widen(model, before, event.id, peak, top, peaks=peaks or None)
            if after == before:
                return
            status, _ = await self.store.update_alarm(
                stream_id,
                replace(stored, adaptive=after, revision=stored.revision + 1),
                expected_seen=stored.state.seen,
                expected_revision=stored.revision,
            )
            if status == "ok":
                _log.info(
                    "stream %r: %s on event %s: feedback allowances %s -> %s",
                    stream_id,
                    label,
                    event.id,
                    _rounded(allowances(before.widenings)),
                    _rounded(allowances(after.widenings)),
                )
                return
            if status == "failed":
                break
        _log.warning("stream %r: feedback on %s not applied to its adaptation", stream_id, event.id)

    async def _evaluated(
        self,
        predictor: Predictor,
        window: StreamWindow,
        *,
        readings: NDArray[np.float64],
        follow: FollowSpec | None,
        top_k: int | None,
        alarm_policy: AlarmPolicy,
        adapt: bool | None,
        explain_all: bool,
    ) -> tuple[list[StreamAnswer], PredictionColumns, AdaptationModel | None, Evaluated]:
        """An append's answers from its window, its predictions, the adaptation model and
        the alarms, events and adaptive state evaluated and stored after them."""
        n_new = len(readings)
        n_out = min(n_new, len(window))
        followed = window.followed
        if followed is not None and follow is not None and n_out < n_new:
            # readings the window no longer holds moved the state before the scored ones
            followed = advance(followed, readings[: n_new - n_out].tolist(), follow.alpha)
        answers, predictions, deviations = await self._score(
            predictor,
            window.timestamps,
            window.values,
            n_out,
            top_k,
            explain_all=explain_all,
            followed=followed,
            learn=follow is not None,
        )
        # the answers' flags and scores are these columns' (``stream_answers``)
        flags = np.array(predictions.is_anomaly, dtype=bool)
        model = self._adaptation_model(predictor) if self._adapts(adapt) else None
        adaptation = None
        if model is not None:
            n = len(answers)
            adaptation = Adaptation(
                model,
                np.array(predictions.anomaly_score, dtype=np.float64),
                np.fromiter((a.warming_up for a in answers), bool, n),
                lambda: np.asarray(predictions.shares, dtype=np.float64),
                predictor.feature_names,
                deviations,
            )
        done = await self.alarms.evaluate_adapted(
            window,
            n_new,
            flags,
            alarm_policy,
            inputs=lambda: self._event_input(
                predictor, window.values, answers, predictions, deviations
            ),
            adaptation=adaptation,
        )
        return answers, predictions, model, done

    def _adapts(self, adapt: bool | None) -> bool:
        return self.adaptation if adapt is None else adapt

    def _adaptation_model(self, predictor: Predictor) -> AdaptationModel | None:
        cached = self._adaptive
        if cached is None or cached[0]() is not predictor:
            model = predictor.time_aware if predictor.time_aware is not None else predictor.model
            found = adaptation_model(model, predictor.references.scores, self.adaptation_memory)
            cached = (weakref.ref(predictor), found)
            self._adaptive = cached
        return cached[1]

    def _adaptation_answer(
        self, stored: StoredAlarm | None, model: AdaptationModel | None
    ) -> StreamAdaptationAnswer:
        """A stream's adaptive state for ``GET /streams/{id}``."""
        state = AdaptiveState() if stored is None or stored.adaptive is None else stored.adaptive
        return StreamAdaptationAnswer(
            enabled=self.adaptation and model is not None,
            level=state.level,
            reference=None if model is None else model.reference,
            threshold_raise=None if model is None else state.shift(model),
            by_level=None if model is None else state.raised_by(model),
            by_feedback=None if model is None else state.widening(model),
            learned=state.learned,
            frozen=state.frozen,
            widenings=[
                StreamWidening(w.event_id, w.amount, dict(w.allowances), w.bounds_json())
                for w in state.widenings
            ],
        )

    async def recent(self, stream_id: str, *, limit: int) -> StreamScoresAnswer:
        """A live stream's recent scores, oldest first; ``StreamNotFoundError`` when there is
        none."""
        check_stream_id(stream_id)
        found = await self.store.recent(stream_id, limit=limit)
        if found is None:
            raise StreamNotFoundError(f"stream {stream_id!r} does not exist (or has expired)")
        return scores_answer(stream_id, found, self.store.recent_size)

    async def streams(self, *, limit: int, after: str | None = None) -> StreamListAnswer:
        """A page of live streams ordered by id, after the id ``after``."""
        if after is not None:
            check_stream_id(after)
        found = await self.store.list_streams(limit=limit + 1, after=after)
        return list_answer(found, limit, self.store.backend, self.store.degraded)

    # ------------------------------------------------------------------ recent scores
    def _record_recent(self, window: StreamWindow, answers: list[StreamAnswer]) -> None:
        """Record the answered readings in the stream's recent scores (the store does not
        make the append wait for it)."""
        if not self.store.recent_size:
            return
        times = window.timestamps[len(window) - len(answers) :].tolist()
        entries = [
            RecentScore(t, a.anomaly_score, SCORE_THRESHOLD, a.is_anomaly)
            for t, a in zip(times, answers, strict=True)
        ]
        self.store.record_recent(
            window.stream_id, entries, restarted=window.restarted, degraded=window.degraded
        )

    # ------------------------------------------------------------------ scoring
    def _event_input(
        self,
        predictor: Predictor,
        values: NDArray[np.float64],
        answers: list[StreamAnswer],
        predictions: PredictionColumns,
        deviations: Deviations | None,
    ) -> EventInput:
        """What the answered readings bring to the stream's events (``streams/events.py``)."""
        cached = self._ranges
        if cached is None or cached[0]() is not predictor:
            index = {name: c for c, name in enumerate(predictor.feature_names)}
            cached = (weakref.ref(predictor), *model_range(predictor), index)
            self._ranges = cached
        n = len(answers)
        index = cached[3]
        return EventInput(
            severities=np.fromiter((a.severity for a in answers), np.float64, n),
            shares=np.asarray(predictions.shares, dtype=np.float64),
            values=values[len(values) - n :],
            channels=predictor.feature_names,
            low=cached[1],
            high=cached[2],
            why=tuple(
                {index[c.feature]: c.why for c in a.contributions if c.why and c.feature in index}
                for a in answers
            ),
            kinds=() if deviations is None else deviations.kinds,
            deviations=None if deviations is None else deviations.array(),
        )

    def _stream_key(self, predictor: Predictor) -> str:
        cached = self._key
        if cached is not None and cached[0]() is predictor:
            return cached[1]
        key = stream_key(predictor)
        self._key = (weakref.ref(predictor), key)
        return key

    @staticmethod
    def _check_count(n: int, limit: int, what: str) -> None:
        if n == 0:
            raise InvalidReadingsError("readings must not be empty")
        if n > limit:
            raise InvalidReadingsError(f"{what} holds at most {limit} readings, got {n}")

    async def _score(
        self,
        predictor: Predictor,
        ts: NDArray[np.float64],
        X: NDArray[np.float64],
        n_out: int,
        top_k: int | None,
        *,
        explain_all: bool = True,
        followed: Followed | None = None,
        learn: bool = True,
    ) -> tuple[list[StreamAnswer], PredictionColumns, Deviations | None]:
        score = partial(_score_sync, explain_all=explain_all, followed=followed, learn=learn)
        if len(X) >= _OFFLOAD_READINGS or n_out >= _OFFLOAD_READINGS:
            return await anyio.to_thread.run_sync(score, predictor, ts, X, n_out, top_k)
        return score(predictor, ts, X, n_out, top_k)

    def _report(
        self,
        predictor: Predictor,
        X: NDArray[np.float64],
        predictions: PredictionColumns,
        n_anomalies: int,
        inference_ms: float,
    ) -> None:
        hits = int(np.count_nonzero(predictions.cached))
        self.dataplane.report(
            ScoredBatch(predictor.version, X, predictions, n_anomalies, inference_ms / 1000.0, hits)
        )


def stream_key(predictor: Predictor) -> str:
    """The model key a stream's window is kept under: ``<root>@<sha>/w<window>/f<features>``.

    ``root`` and ``sha`` (16 hex of its model file's SHA-256) name the fitted model the
    served version serves (``fitted_model_of``: a threshold revision's trained root, else
    the version itself); ``window`` is the readings a score needs (``history_needed``, 1
    for a point-wise model); ``features`` is 16 hex of the SHA-256 of the input feature
    names (and a time-aware model's window feature names), in order. Version names have
    no ``@``, so ``key_version`` reads the root back. At most ~150 bytes.
    """
    fitted = fitted_model_of(predictor.manifest)
    time_aware = predictor.manifest.time_aware
    names = [
        list(predictor.feature_names),
        [] if time_aware is None else list(time_aware.window_feature_names),
    ]
    features = hashlib.sha256(json.dumps(names).encode()).hexdigest()[:16]
    return f"{fitted.version}@{fitted.model_sha256[:16]}/w{_history(predictor)}/f{features}"


def model_range(predictor: Predictor) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each input channel's expected range (``expected_range`` of the served model)."""
    model = predictor.time_aware if predictor.time_aware is not None else predictor.model
    return expected_range(model)


def key_version(model_key: str) -> str:
    """The version a stream key names (its root); a key of another form, as it is."""
    return model_key.split("@", 1)[0]


def _alarm_answer(stored: StoredAlarm | None) -> StreamAlarmAnswer:
    """A stream's alarm state for ``GET /streams/{id}`` (a fresh one when none is kept)."""
    if stored is None:
        return StreamAlarmAnswer(
            alarms=0,
            readings_evaluated=0,
            last_alarm_reading=None,
            last_alarm_timestamp=None,
            unit=None,
        )
    last = stored.last_alarm_time
    return StreamAlarmAnswer(
        alarms=stored.state.alarms,
        readings_evaluated=stored.state.seen,
        last_alarm_reading=stored.last_alarm_reading,
        last_alarm_timestamp=None if last is None else iso(last),
        unit=stored.unit,
    )


def follow_spec(predictor: Predictor) -> FollowSpec | None:
    """How a stream append moves the followed state of ``predictor``'s model (None: the
    model has no ``follow`` feature)."""
    model = predictor.time_aware
    start = None if model is None else getattr(model, "follow_start_", None)
    if model is None or start is None:
        return None
    return FollowSpec(follow_alpha(int(model.follow_memory)), start)


def _follow_answer(
    followed: Followed | None, served: Predictor | None
) -> StreamFollowAnswer | None:
    """A stream's followed state for ``GET /streams/{id}`` (named by the served model's
    channels; None when it has none)."""
    if followed is None or served is None or served.time_aware is None:
        return None
    names = served.feature_names
    if len(followed.level) != len(names):
        return None
    model = served.time_aware
    return StreamFollowAnswer(
        memory=int(getattr(model, "follow_memory", 0)),
        level=dict(zip(names, followed.level, strict=True)),
        spread=dict(zip(names, (FOLLOW_SPREAD * d for d in followed.deviation), strict=True)),
    )


def _rounded(per_sensor: dict[str, float]) -> dict[str, float]:
    return {name: round(amount, 4) for name, amount in sorted(per_sensor.items())}


def _adapted_answers(answers: list[StreamAnswer], done: Evaluated) -> None:
    """The answers after the stream's adaptive threshold (unchanged when it did not adapt)."""
    if done.scores is None:
        return
    severity = severity_from_score(done.scores) if done.severity is None else done.severity
    confidence = confidence_from_score(done.scores)
    rows = zip(
        answers,
        done.flags.tolist(),
        done.scores.tolist(),
        severity.tolist(),
        confidence.tolist(),
        strict=True,
    )
    for answer, flag, score, severity, confidence in rows:
        answer.is_anomaly = flag
        answer.anomaly_score = score
        answer.severity = severity
        answer.confidence = confidence


def _kind(predictor: Predictor) -> ModelKind:
    return "point-wise" if predictor.time_aware is None else "time-aware"


def _history(predictor: Predictor) -> int:
    model = predictor.time_aware
    return 1 if model is None else model.history_needed


def _score_sync(
    predictor: Predictor,
    ts: NDArray[np.float64],
    X: NDArray[np.float64],
    n_out: int,
    top_k: int | None,
    *,
    explain_all: bool = True,
    followed: Followed | None = None,
    learn: bool = True,
) -> tuple[list[StreamAnswer], PredictionColumns, Deviations | None]:
    """Answers for the last ``n_out`` readings of ``(ts, X)`` (blocking), their predictions
    for the data plane's hooks, and their deviations (a time-aware model's; what feedback
    allowances are bounded by). ``followed``: the followed state before the first of them
    (None: the training state); ``learn=False`` keeps it for every reading."""
    first = len(X) - n_out
    model = predictor.time_aware
    stamps = [iso(t) for t in ts[first:].tolist()]
    if model is None:
        predictions = predictor.score(np.ascontiguousarray(X[first:]))
        no_contributions: list[list[Contribution]] = [[] for _ in stamps]
        warming_up = np.zeros(n_out, dtype=bool)
        answers = stream_answers(stamps, predictions, warming_up, no_contributions)
        return answers, predictions, None
    try:
        with np.errstate(all="ignore"):
            out = model.score_window(ts, X, last=n_out, follow=followed, learn=learn)
    except ValueError as exc:
        raise InvalidReadingsError(str(exc)) from None
    if not np.isfinite(out.anomaly_score).all():
        raise InvalidReadingsError("readings are too extreme to be scored")
    flagged = out.is_anomaly.tolist()
    contributions = [
        [
            Contribution(feature=name, share=part["share"], why=part["why"])
            for name, part in out.contributions(i, top_k).items()
        ]
        if top_k != 0 and (explain_all or flagged[i] or i == n_out - 1)
        else []
        for i in range(n_out)
    ]
    predictions = PredictionColumns(
        is_anomaly=out.is_anomaly,
        anomaly_score=out.anomaly_score,
        confidence=out.confidence,
        severity=out.severity,
        scores=np.empty((n_out, 0)),
        votes=out.votes,
        shares=out.shares,  # per channel, in feature order
        cached=np.zeros(n_out, dtype=bool),
    )
    answers = stream_answers(stamps, predictions, out.warming_up, contributions)
    return answers, predictions, Deviations(out.kinds, out.deviations)
