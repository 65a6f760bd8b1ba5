"""The client's result types: one frozen dataclass per answer of the service.

Each keeps the whole answer in ``raw`` and lists, in ``extra``, the fields a newer server
sends that this client does not know yet. Fields added after ``raw`` have defaults, so an
answer of an older server (without them) still parses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Final

__all__ = [
    "Contribution",
    "DetectorVerdict",
    "FeatureRow",
    "Health",
    "Job",
    "ModelDetail",
    "ModelInfo",
    "ModelSummary",
    "ModelVersion",
    "Prediction",
    "StreamAnswer",
    "StreamReadings",
    "StreamState",
    "StreamSummary",
    "Timestamp",
    "WindowResult",
    "contributions_of",
]

FeatureRow = Sequence[float] | Mapping[str, float]
"""Feature values in the model's order, or keyed by feature name."""

Timestamp = datetime | str | float
"""A reading's time: a timezone-aware ``datetime``, an ISO 8601 string or epoch seconds."""


def _unknown(raw: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in known}


@dataclass(frozen=True)
class DetectorVerdict:
    """What one detector said: its score, its threshold and its vote."""

    score: float
    threshold: float
    vote: bool


@dataclass(frozen=True)
class Contribution:
    """One feature's share of a reading's anomaly (``why``: a reason, when the model has one)."""

    feature: str
    share: float
    why: str | None


def contributions_of(raw: Mapping[str, Any]) -> tuple[Contribution, ...]:
    """The ``contributions`` of an answer, in its order (largest share first)."""
    return tuple(
        Contribution(feature=str(c["feature"]), share=float(c["share"]), why=c.get("why"))
        for c in raw.get("contributions") or ()
    )


@dataclass(frozen=True)
class Prediction:
    """The answer for one reading (``/predict``, ``/predict/batch``).

    ``raw`` is the answer as the JSON form writes it, whichever form the server sent;
    ``detectors`` and ``contributions`` are built from it on first use (a row of the
    tensor form offers ``build_detectors`` and ``build_contributions``, which read its
    columns without making the JSON form's dicts)."""

    observation_id: str
    is_anomaly: bool
    anomaly_score: float
    confidence: float
    model_version: str
    cached: bool
    inference_ms: float
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    severity: float = 0.0
    """How anomalous, in [0, 1): 0 for a normal reading."""

    @cached_property
    def detectors(self) -> dict[str, DetectorVerdict]:
        """Each detector's verdict, by name."""
        build = getattr(self.raw, "build_detectors", None)
        if build is not None:
            built: dict[str, DetectorVerdict] = build()
            return built
        return {
            name: DetectorVerdict(
                score=float(d["score"]), threshold=float(d["threshold"]), vote=bool(d["vote"])
            )
            for name, d in self.raw["detectors"].items()
        }

    @cached_property
    def contributions(self) -> tuple[Contribution, ...]:
        """Each feature's share of the anomaly, largest first (every feature, or the
        ``top_k`` largest when the call asked for them)."""
        build = getattr(self.raw, "build_contributions", None)
        if build is not None:
            built: tuple[Contribution, ...] = build()
            return built
        return contributions_of(self.raw)

    @property
    def extra(self) -> dict[str, Any]:
        """Answer fields this client does not know yet."""
        return _unknown(self.raw, _PREDICTION_FIELDS)


_PREDICTION_FIELDS: Final = frozenset(
    {
        "observation_id",
        "is_anomaly",
        "anomaly_score",
        "confidence",
        "severity",
        "contributions",
        "model_version",
        "detectors",
        "cached",
        "inference_ms",
    }
)


@dataclass(frozen=True)
class Health:
    """``GET /health``: ``ok``, ``degraded`` (no cache, still serving) or ``unavailable``.

    ``streams_*`` and ``revisions_*`` are None when the server has no such part."""

    status: str
    model_loaded: bool
    model_version: str | None
    cache_backend: str | None
    cache_ok: bool | None
    uptime_s: float
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    streams_backend: str | None = None
    streams_ok: bool | None = None
    """False while Redis is unreachable and streams live in process memory."""
    revisions_channel: str | None = None
    revisions_subscribed: bool | None = None
    revisions_unsent_version: str | None = None
    """A version this replica swapped in but could not announce yet."""


@dataclass(frozen=True)
class ModelInfo:
    """``GET /model/info``: the served version, its features, detectors and how it decides.

    ``detectors`` holds each detector's entry as served (``name``, ``threshold``,
    ``scale``, ``n_components``); the ``*_method`` and ``score_definition`` fields are the
    model's own one-line descriptions."""

    version: str
    feature_names: tuple[str, ...]
    detector_names: tuple[str, ...]
    created_at: str
    inference_backend: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    detectors: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    min_votes: int = 0
    vote_rule: str = ""
    feature_stats: Mapping[str, Mapping[str, float]] = field(default_factory=dict, hash=False)
    """Training ``mean``, ``std``, ``min`` and ``max`` of each feature."""
    scaling: Mapping[str, Mapping[str, Any]] | None = field(default=None, hash=False)
    contributions_method: str | None = None
    severity_method: str | None = None
    score_definition: str = ""
    metrics: Mapping[str, Any] | None = field(default=None, hash=False)
    library_versions: Mapping[str, str] = field(default_factory=dict, hash=False)
    false_alarm_rate: Mapping[str, Any] | None = field(default=None, hash=False)
    """The rate expected on later normal readings (``target``, ``expected``, ``upper_95``,
    ``n_calibration``, ``flagged``, ``method``); ``method`` is ``"unknown"`` for older models."""

    @property
    def n_features(self) -> int:
        """How many features each row must have."""
        return len(self.feature_names)

    @property
    def thresholds(self) -> dict[str, float]:
        """Each detector's threshold, by name."""
        return {str(d["name"]): float(d["threshold"]) for d in self.detectors}


@dataclass(frozen=True)
class StreamAnswer:
    """The answer for one reading of a stream (``/predict/window`` or ``/streams/...``).

    ``index`` is the reading's position in the request; ``raw`` keeps the whole answer and
    ``extra`` the fields this client does not know yet."""

    index: int
    timestamp: str
    is_anomaly: bool
    anomaly_score: float
    severity: float
    confidence: float
    warming_up: bool
    contributions: tuple[Contribution, ...]
    alarm: bool
    """The reading raised an alarm (false from servers older than the alarm field)."""
    event_id: str | None
    """The stream's event the reading belongs to (None outside any, for ``/predict/window``
    and from servers older than events)."""
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def extra(self) -> dict[str, Any]:
        """Answer fields not listed above."""
        return _unknown(self.raw, _STREAM_ANSWER_FIELDS)


_STREAM_ANSWER_FIELDS: Final = frozenset(
    {
        "index",
        "timestamp",
        "is_anomaly",
        "anomaly_score",
        "severity",
        "confidence",
        "warming_up",
        "contributions",
        "alarm",
        "event_id",
    }
)


@dataclass(frozen=True)
class WindowResult:
    """``POST /predict/window``: the answers (the last reading's, or every reading's)."""

    answers: tuple[StreamAnswer, ...]
    n_anomalies: int
    model_version: str
    model_kind: str
    window: int
    inference_ms: float
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def last(self) -> StreamAnswer:
        """The answer of the newest reading."""
        return self.answers[-1]

    @property
    def extra(self) -> dict[str, Any]:
        """Answer fields not listed above."""
        return _unknown(self.raw, _WINDOW_FIELDS)


_WINDOW_FIELDS: Final = frozenset(
    {"answers", "n_anomalies", "model_version", "model_kind", "window", "inference_ms"}
)


@dataclass(frozen=True)
class StreamSummary:
    """A stream's state right after readings were appended."""

    readings_in_window: int
    window: int
    total: int
    warming_up: bool
    restarted: bool
    """``new_stream`` or ``model_changed``."""
    new_stream: bool
    model_changed: bool
    backend: str
    degraded: bool
    alarms: int
    """Alarms the stream raised since it (re)started."""
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    threshold_raise: float | None = None
    """How far the stream's adaptive threshold is raised now; None: the readings did not
    adapt."""


@dataclass(frozen=True)
class StreamAdaptation:
    """A stream's adaptive threshold (``GET /streams/{stream_id}``'s ``adaptation``)."""

    enabled: bool
    level: float | None
    reference: float | None
    threshold_raise: float | None
    by_level: float | None
    by_feedback: float | None
    learned: int
    frozen: int
    widenings: tuple[tuple[str, float, dict[str, float]], ...]
    """``(event id, amount, {sensor: allowance})`` of each feedback widening, oldest first."""
    widening_bounds: tuple[dict[str, dict[str, float]], ...] = ()
    """Of each widening (same order): ``{sensor: {kind: bound}}``, the labelled event's
    largest deviations its allowances cover (empty: at any size)."""


@dataclass(frozen=True)
class StreamFollow:
    """A stream's followed level and spread per channel (``GET /streams/{stream_id}``'s
    ``follow``: a model trained with a follow memory)."""

    memory: int
    level: dict[str, float]
    spread: dict[str, float]


@dataclass(frozen=True)
class StreamReadings:
    """``POST /streams/{stream_id}/readings``: one answer per appended reading."""

    stream_id: str
    answers: tuple[StreamAnswer, ...]
    n_anomalies: int
    model_version: str
    model_kind: str
    stream: StreamSummary
    inference_ms: float
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def extra(self) -> dict[str, Any]:
        """Answer fields not listed above."""
        return _unknown(self.raw, _READINGS_FIELDS)


_READINGS_FIELDS: Final = frozenset(
    {
        "stream_id",
        "answers",
        "n_anomalies",
        "model_version",
        "model_kind",
        "stream",
        "inference_ms",
    }
)


@dataclass(frozen=True)
class StreamState:
    """``GET /streams/{stream_id}``: a live stream's totals, first/last timestamp, expiry
    and alarm state (the answer's ``alarm`` object, flattened)."""

    stream_id: str
    total: int
    readings_in_window: int
    n_features: int
    first_timestamp: str
    last_timestamp: str
    model_version: str
    expires_in_s: float
    backend: str
    degraded: bool
    alarms: int
    """Alarms raised since the stream (re)started."""
    last_alarm_timestamp: str | None
    """Timestamp of the reading of the last alarm, ISO 8601; None before the first."""
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    readings_evaluated: int = 0
    """Readings the alarm policy has evaluated."""
    last_alarm_reading: int | None = None
    """Number of the reading of the last alarm (0 = the first reading)."""
    alarm_unit: str | None = None
    """Unit of the alarm policy last applied (``readings`` or ``seconds``)."""
    adaptation: StreamAdaptation | None = None
    """The stream's adaptive threshold (None from a server without it)."""
    follow: StreamFollow | None = None
    """The stream's followed level and spread (None: its model follows none)."""

    @property
    def extra(self) -> dict[str, Any]:
        """Answer fields not listed above."""
        return _unknown(self.raw, _STATE_FIELDS)


_STATE_FIELDS: Final = frozenset(
    {
        "stream_id",
        "total",
        "readings_in_window",
        "n_features",
        "first_timestamp",
        "last_timestamp",
        "model_version",
        "expires_in_s",
        "backend",
        "degraded",
        "alarm",
        "adaptation",
        "follow",
    }
)


JOB_FINAL_STATUSES: Final = frozenset({"succeeded", "failed", "cancelled"})
"""A job in one of these statuses changes no more."""


@dataclass(frozen=True)
class Job:
    """A training job (``POST /models/{name}/versions``, ``GET``/``DELETE /jobs/{job_id}``)."""

    job_id: str
    model: str
    status: str
    """``queued``, ``running``, ``succeeded``, ``failed`` or ``cancelled``."""
    progress: str | None
    version: str | None
    """The version it published, once it succeeded."""
    metrics: Mapping[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float
    owner: str
    """The replica that runs it."""
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """Whether the job has stopped (succeeded, failed or cancelled)."""
        return self.status in JOB_FINAL_STATUSES

    @property
    def extra(self) -> dict[str, Any]:
        """Answer fields not listed above."""
        return _unknown(self.raw, _JOB_FIELDS)


_JOB_FIELDS: Final = frozenset(
    {
        "job_id",
        "model",
        "status",
        "progress",
        "version",
        "metrics",
        "error",
        "created_at",
        "updated_at",
        "owner",
    }
)


@dataclass(frozen=True)
class ModelSummary:
    """One model of ``GET /models``: its aliases and the versions loaded now."""

    name: str
    aliases: Mapping[str, str]
    loaded_versions: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class ModelVersion:
    """One version of ``GET /models/{name}``."""

    version: str
    created_at: str
    kind: str
    """``point-wise`` or ``time-aware``."""
    features: tuple[str, ...]
    thresholds: Mapping[str, float]
    held_out_f1: float | None
    parent_version: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class ModelDetail:
    """``GET /models/{name}``: versions (newest first), aliases and their history."""

    name: str
    aliases: Mapping[str, str]
    production_history: tuple[str, ...]
    kind: str | None
    """The ``production`` version's kind (None without one)."""
    features: tuple[str, ...] | None
    versions: tuple[ModelVersion, ...]
    alias_log: tuple[Mapping[str, Any], ...]
    loaded_versions: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def extra(self) -> dict[str, Any]:
        """Answer fields not listed above."""
        return _unknown(self.raw, _MODEL_DETAIL_FIELDS)


_MODEL_DETAIL_FIELDS: Final = frozenset(
    {
        "name",
        "aliases",
        "production_history",
        "kind",
        "features",
        "versions",
        "alias_log",
        "loaded_versions",
    }
)
