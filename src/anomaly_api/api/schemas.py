"""Request and response bodies of the HTTP API (Pydantic v2).

Feature values are strict finite floats of magnitude at most 1e150: ``true`` is not 1.0,
``"1.5"`` is not a number, and ``null`` is not missing data. Limits that depend on
settings (batch cap, length of ``observation_id``) are checked when the body is read, in
``anomaly_api.api.body``.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    create_model,
    model_validator,
)

from anomaly_api.artifacts import ArtifactManifest
from anomaly_api.monitoring.alarms import AlarmPolicy
from anomaly_api.service import answers, event_answers, stream_answers, stream_listing
from anomaly_api.training.calibration import stated

NORMAL_FEATURES: list[JsonValue] = [0.5, 1.2, -0.3, 0.8, 1.5, 0.2, -0.1, 0.9]
ANOMALOUS_FEATURES: list[JsonValue] = [8.1, -5.3, 7.2, 9.0, -8.4, 6.1, 8.8, -7.2]
EXAMPLE_OBSERVATION_ID = "sensor_42_t1234"

MAX_ABS_FEATURE = 1e150
"""Largest feature magnitude accepted: the detectors square distances between readings,
and beyond ~1e154 those overflow float64 (no sensor reads anywhere near this)."""

FiniteFloat = Annotated[
    float, Field(strict=True, allow_inf_nan=False, ge=-MAX_ABS_FEATURE, le=MAX_ABS_FEATURE)
]


def _features_kind(value: Any) -> str | None:
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


Features = Annotated[
    Annotated[list[FiniteFloat], Tag("array")] | Annotated[dict[str, FiniteFloat], Tag("object")],
    Discriminator(
        _features_kind,
        custom_error_type="features_type",
        custom_error_message="features must be an array of numbers or an object of "
        "numbers keyed by feature name",
    ),
]


TOP_K_DESCRIPTION = (
    "Return only the `top_k` largest feature contributions of each answer (1 to the "
    "model's number of features, see `/model/info`); every feature when absent."
)
TopK = Annotated[int | None, Field(strict=True, ge=1, description=TOP_K_DESCRIPTION)]


class Observation(BaseModel):
    """One reading of a batch: its feature values and an optional caller-chosen identifier."""

    model_config = ConfigDict(extra="forbid")

    features: Features = Field(
        description="The feature values in the model's order (see `/model/info`), or an "
        "object keyed by feature name holding every feature."
    )
    observation_id: str | None = Field(
        default=None,
        min_length=1,
        description="Echoed back; generated when absent. At most "
        "`max_observation_id_length` characters (default 128).",
    )


class PredictRequest(Observation):
    """One reading: its feature values, an optional identifier, and the answer's options."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"features": NORMAL_FEATURES, "observation_id": EXAMPLE_OBSERVATION_ID}]
        },
    )

    top_k: TopK = None


class PredictBatchRequest(BaseModel):
    """Several readings scored together."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "observations": [
                        {"features": NORMAL_FEATURES, "observation_id": "sensor_42_t1234"},
                        {"features": ANOMALOUS_FEATURES, "observation_id": "sensor_42_t1235"},
                    ],
                    "top_k": 3,
                }
            ]
        },
    )

    observations: list[Observation] = Field(
        min_length=1, description="1 to `max_batch_rows` readings (default 1000)."
    )
    top_k: TopK = None


def _model_of(
    name: str, cls: type[Any], models: dict[type[Any], type[BaseModel]]
) -> type[BaseModel]:
    """Model ``name`` with the fields, types, doc and descriptions of dataclass ``cls``;
    ``models`` maps the dataclasses it nests to their generated models."""

    def swap(annotation: Any) -> Any:
        if annotation in models:
            return models[annotation]
        args = get_args(annotation)
        if get_origin(annotation) is Annotated:
            return Annotated[(swap(args[0]), *annotation.__metadata__)]
        if args:
            origin = get_origin(annotation)
            if origin is types.UnionType:  # ``str | None``, which cannot be subscripted
                origin = Union
            return origin[tuple(swap(arg) for arg in args)]
        return annotation

    hints = get_type_hints(cls, include_extras=True)
    fields: dict[str, Any] = {f.name: (swap(hints[f.name]), ...) for f in dataclasses.fields(cls)}
    return create_model(name, __doc__=cls.__doc__, **fields)


# The response shapes are the service's answer dataclasses; these models, generated from
# them, are what the OpenAPI schema documents and what the tests validate responses with.
DetectorVerdict = _model_of("DetectorVerdict", answers.DetectorVerdict, {})
Contribution = _model_of("Contribution", answers.Contribution, {})
PredictResponse = _model_of(
    "PredictResponse",
    answers.Answer,
    {answers.DetectorVerdict: DetectorVerdict, answers.Contribution: Contribution},
)
PredictBatchResponse = _model_of(
    "PredictBatchResponse", answers.BatchAnswer, {answers.Answer: PredictResponse}
)


class CacheHealth(BaseModel):
    """The prediction cache as seen by the health check."""

    backend: str = Field(description="`memory`, `redis` or `off` (`ANOMALY_PREDICTION_CACHE`).")
    ok: bool


class StreamsHealth(BaseModel):
    """The stream store as seen by the health check."""

    backend: str = Field(description="`memory` or `redis`.")
    ok: bool = Field(
        description="False while Redis is unreachable and streams live in process memory "
        "(fail-open: each replica keeps its own windows until Redis is back)."
    )


class RevisionsHealth(BaseModel):
    """The revision channel shared by the replicas (only with Redis)."""

    channel: str = Field(description="The pub/sub channel admin swaps are announced on.")
    subscribed: bool = Field(
        description="False while Redis is unreachable: announcements of other replicas are "
        "not heard (the last one is followed on resubscribing)."
    )
    unsent_version: str | None = Field(
        description="A version this replica swapped in but could not announce yet (retried)."
    )


class HealthResponse(BaseModel):
    """Readiness of the service; ``degraded`` still serves predictions (without the cache)."""

    status: Literal["ok", "degraded", "unavailable"]
    model_loaded: bool
    model_version: str | None
    cache: CacheHealth
    streams: StreamsHealth | None = None
    revisions: RevisionsHealth | None = None
    uptime_s: float


class LivenessResponse(BaseModel):
    """The process is up and answering."""

    status: Literal["alive"] = "alive"


class ReadinessResponse(BaseModel):
    """Whether predictions can be served (a model is loaded)."""

    ready: bool
    model_version: str | None


_MANIFEST_SHOWN = (
    "version",
    "created_at",
    "feature_names",
    "feature_stats",
    "detectors",
    "min_votes",
    "vote_rule",
    "scaling",
    "contributions",
    "severity",
    "score_definition",
    "metrics",
    "library_versions",
)
"""The manifest fields ``/model/info`` shows (not: file names, hashes, fit parameters)."""


_model_info_fields: dict[str, Any] = {
    name: (field.annotation, field)
    for name, field in ArtifactManifest.model_fields.items()
    if name in _MANIFEST_SHOWN
}


class FalseAlarmRate(BaseModel):
    """The false-alarm rate the thresholds are expected to give on later normal readings."""

    target: float | None = Field(description="The rate asked for (None: no target).")
    expected: float | None = Field(description="Expected rate (None when unknown).")
    upper_95: float | None = Field(description="95% upper bound of the rate.")
    n_calibration: int | None = Field(description="Held-out normal readings it rests on.")
    flagged: int | None = Field(description="How many of them the thresholds flag.")
    method: str = Field(description='How it was computed; "unknown" for older models.')


_model_info_fields["false_alarm_rate"] = (FalseAlarmRate, Field(description=FalseAlarmRate.__doc__))
_model_info_fields["n_features"] = (int, Field(description="Features per reading."))
_model_info_fields["inference_backend"] = (
    str,
    Field(description="How the detectors' scores are computed (`fast`, `numpy`, `sklearn`)."),
)
ModelInfoResponse = create_model(
    "ModelInfoResponse",
    __config__=ConfigDict(protected_namespaces=()),
    __doc__="The served model version and everything known about it.",
    **_model_info_fields,
)


def model_info(manifest: ArtifactManifest, inference_backend: str) -> dict[str, Any]:
    """The ``/model/info`` body for ``manifest`` (a ``ModelInfoResponse``)."""
    return manifest.model_dump(include=set(_MANIFEST_SHOWN)) | {
        "false_alarm_rate": stated(manifest.metrics),
        "n_features": len(manifest.feature_names),
        "inference_backend": inference_backend,
    }


class ErrorInfo(BaseModel):
    """What went wrong."""

    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="Human-readable explanation.")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field problems, when there are several."
    )
    request_id: str | None = Field(
        default=None, description="The request's X-Request-ID, to find it in the logs."
    )


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorInfo


# ---------------------------------------------------------------- streams
MAX_TOP_K = 1000


PositiveFinite = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]


class AlarmPolicyRequest(BaseModel):
    """An alarm policy for this request: at least `k` anomalies within `window` readings
    (or seconds) raise an alarm, then none for `cooldown`. `k`, `window` and `cooldown`
    are required (a policy reads the same whatever the settings); `unit` is `readings`
    unless given."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"k": 3, "window": 5, "cooldown": 12, "unit": "readings"}]},
    )

    k: int = Field(strict=True, ge=1, le=1_000_000, description="Anomalies that raise an alarm.")
    window: PositiveFinite = Field(
        le=1e12, description="Within this many readings (or seconds); at least `k` readings."
    )
    cooldown: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=1e12)] = Field(
        description="After an alarm, no other one for this many readings (or seconds)."
    )
    unit: Literal["readings", "seconds"] = Field(
        default="readings", description="Unit of `window` and `cooldown`."
    )

    @model_validator(mode="after")
    def _fits(self) -> AlarmPolicyRequest:
        self.policy()  # k within the window (readings), raises ValueError otherwise
        return self

    def policy(self) -> AlarmPolicy:
        """As the monitoring layer's ``AlarmPolicy``."""
        return AlarmPolicy(k=self.k, window=self.window, cooldown=self.cooldown, unit=self.unit)


ALARM_POLICY_DESCRIPTION = (
    "The alarm policy for these readings; the `alarm_*` settings when absent. See "
    "docs/monitoring.md for what a policy that changes does to a stream's alarm state."
)


class WindowRequest(BaseModel):
    """The last readings of one stream, oldest first, each with its timestamp."""

    model_config = ConfigDict(extra="forbid")

    timestamps: list[Annotated[float, Field(strict=True, allow_inf_nan=False)] | str] = Field(
        min_length=1,
        description="One per reading, in time order: ISO 8601 strings (no zone = UTC) or "
        "epoch seconds. A repeated timestamp is merged into the reading before it (the mean) "
        "and a reading before an earlier one (a clock stepping back) is skipped.",
    )
    readings: list[Features] = Field(
        min_length=1,
        description="1 to `window_max_readings` readings (default 2000), each as in `/predict`.",
    )
    mode: Literal["last", "all"] = Field(
        default="last", description="`last`: answer the newest reading; `all`: every reading."
    )
    top_k: int = Field(
        default=3, ge=0, le=MAX_TOP_K, description="Contributors listed per answer (0: none)."
    )
    alarm_policy: AlarmPolicyRequest | None = Field(
        default=None, description=ALARM_POLICY_DESCRIPTION
    )


class StreamReadingsRequest(BaseModel):
    """New readings of one stream, oldest first, later than every reading it holds."""

    model_config = ConfigDict(extra="forbid")

    timestamps: list[Annotated[float, Field(strict=True, allow_inf_nan=False)] | str] = Field(
        min_length=1, description="One per reading, strictly increasing."
    )
    readings: list[Features] = Field(
        min_length=1, description="1 to `stream_max_readings` readings (default 16)."
    )
    top_k: int = Field(
        default=3, ge=0, le=MAX_TOP_K, description="Contributors listed per answer (0: none)."
    )
    alarm_policy: AlarmPolicyRequest | None = Field(
        default=None, description=ALARM_POLICY_DESCRIPTION
    )
    adapt: bool | None = Field(
        default=None,
        strict=True,
        description="Adapt the stream's threshold with these readings (true/false); the "
        "`stream_adaptation` setting when absent. Off: answered with the model's own "
        "threshold and the stream's adaptive state left as it is.",
    )
    follow: bool = Field(
        default=True,
        strict=True,
        description="Move the stream's followed level and spread with these readings (a "
        "model trained with a follow memory). False: each reading is judged against the "
        "training level and spread and the stream's followed state is left as it is.",
    )


Contribution = _model_of("Contribution", stream_answers.Contribution, {})
StreamAnswerModel = _model_of(
    "StreamAnswer", stream_answers.StreamAnswer, {stream_answers.Contribution: Contribution}
)
WindowResponse = _model_of(
    "WindowResponse", stream_answers.WindowAnswer, {stream_answers.StreamAnswer: StreamAnswerModel}
)
StreamSummary = _model_of("StreamSummary", stream_answers.StreamSummary, {})
StreamReadingsResponse = _model_of(
    "StreamReadingsResponse",
    stream_answers.StreamReadingsAnswer,
    {stream_answers.StreamAnswer: StreamAnswerModel, stream_answers.StreamSummary: StreamSummary},
)
StreamAlarmState = _model_of("StreamAlarmState", stream_answers.StreamAlarmAnswer, {})
StreamWidening = _model_of("StreamWidening", stream_answers.StreamWidening, {})
StreamAdaptation = _model_of(
    "StreamAdaptation",
    stream_answers.StreamAdaptationAnswer,
    {stream_answers.StreamWidening: StreamWidening},
)
EventSensor = _model_of("EventSensor", event_answers.EventSensor, {})
EventFeedback = _model_of("EventFeedback", event_answers.EventFeedback, {})
StreamEventResponse = _model_of(
    "StreamEvent",
    event_answers.StreamEvent,
    {event_answers.EventSensor: EventSensor, event_answers.EventFeedback: EventFeedback},
)
StreamEventsResponse = _model_of(
    "StreamEventsResponse",
    event_answers.StreamEventsAnswer,
    {event_answers.StreamEvent: StreamEventResponse},
)


class FeedbackRequest(BaseModel):
    """An operator's label of one event of a stream."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"label": "false_alarm", "note": "valve test, see shift log 14"}]
        },
    )

    label: event_answers.FeedbackLabel = Field(
        description="`false_alarm`, `confirmed` (a real anomaly) or `expected` (e.g. "
        "planned maintenance)."
    )
    note: str = Field(default="", max_length=1000, description="Free text, up to 1,000 characters.")


ListedStream = _model_of("ListedStream", stream_listing.ListedStreamAnswer, {})
StreamListResponse = _model_of(
    "StreamListResponse",
    stream_listing.StreamListAnswer,
    {stream_listing.ListedStreamAnswer: ListedStream},
)
RecentScore = _model_of("RecentScore", stream_listing.RecentScoreAnswer, {})
StreamScoresResponse = _model_of(
    "StreamScoresResponse",
    stream_listing.StreamScoresAnswer,
    {stream_listing.RecentScoreAnswer: RecentScore},
)
StreamFollow = _model_of("StreamFollow", stream_answers.StreamFollowAnswer, {})
StreamStateResponse = _model_of(
    "StreamStateResponse",
    stream_answers.StreamStateAnswer,
    {
        stream_answers.StreamAlarmAnswer: StreamAlarmState,
        stream_answers.StreamAdaptationAnswer: StreamAdaptation,
        stream_answers.StreamFollowAnswer: StreamFollow,
    },
)
